"""The three-node cluster's configuration (`infra/cluster.py`), without starting it: the
chaos benchmark and `tests/test_chaos.py` run it for real."""
from __future__ import annotations

from infra import broker
from infra.cluster import ClusterConfig


def properties(node: broker.BrokerConfig) -> dict[str, str]:
    return dict(line.split("=", 1) for line in broker.server_properties(node).splitlines())


def test_three_nodes_form_one_quorum_with_replication_three_and_two_in_sync(tmp_path):
    cluster = ClusterConfig.on_free_ports(tmp_path)
    nodes = [properties(node) for node in cluster.nodes]
    voters = {p["controller.quorum.voters"] for p in nodes}
    assert len(voters) == 1  # every node names the same three voters
    assert sorted(v.split("@")[0] for v in voters.pop().split(",")) == ["1", "2", "3"]
    assert [p["node.id"] for p in nodes] == ["1", "2", "3"]
    for p in nodes:
        assert p["default.replication.factor"] == "3"
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.replication.factor"] == "3"
        assert p["min.insync.replicas"] == "2"
        assert p["transaction.state.log.min.isr"] == "2"
    ports = [n.port for n in cluster.nodes] + [n.controller_port for n in cluster.nodes]
    assert len(set(ports)) == 6
    assert cluster.bootstrap == ",".join(f"127.0.0.1:{n.port}" for n in cluster.nodes)
    assert len({n.data_dir for n in cluster.nodes}) == 3


def test_a_single_broker_is_still_its_own_quorum_of_one(tmp_path):
    p = properties(broker.BrokerConfig(data_dir=tmp_path, port=31000, controller_port=31001))
    assert (p["node.id"], p["controller.quorum.voters"]) == ("1", "1@127.0.0.1:31001")
    assert (p["default.replication.factor"], p["min.insync.replicas"]) == ("1", "1")
