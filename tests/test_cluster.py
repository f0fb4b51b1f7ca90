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


def test_topic_creation_waits_out_a_controller_the_admin_client_does_not_know_yet(monkeypatch):
    """A new cluster can name its controller before the admin client has that broker's
    address: kafka-python raises UnknownBrokerIdError (seen in a fresh-clone `make
    test`). `broker.create_topics` reports it as a BrokerError, which the cluster's
    set-up waits out, instead of a raw kafka-python error ending the run."""
    from types import SimpleNamespace

    from kafka.errors import UnknownBrokerIdError

    from infra import cluster
    from streams import kafka_clients
    from streams.settings import get_settings

    created: dict[str, int] = {}
    calls = []

    class Admin:
        def create_topics(self, topics, **_):
            calls.append(sorted(topics))
            if len(calls) == 1:
                raise UnknownBrokerIdError(1)
            created.update({name: spec["num_partitions"] for name, spec in topics.items()})
            return {"topics": [{"name": name, "error_code": 0} for name in topics]}

        def close(self):
            pass

    monkeypatch.setattr(kafka_clients, "admin", lambda *a, **k: Admin())
    monkeypatch.setattr(broker, "partition_counts", lambda bootstrap, names: {n: created[n] for n in names if n in created})
    monkeypatch.setattr(broker, "correct_topic_configs", lambda bootstrap, configs: [])
    cluster.create_topics(SimpleNamespace(bootstrap="127.0.0.1:1"), timeout=10)
    assert len(calls) == 2 and calls[0] == calls[1]  # refused once, then asked again for all of them
    assert created == broker.topic_plan(get_settings().member_partitions)
