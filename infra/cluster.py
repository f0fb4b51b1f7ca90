"""A real three-node Apache Kafka cluster (KRaft) on loopback: replication factor 3,
`min.insync.replicas` 2, built from `infra/broker.py`'s pieces (the same jars,
properties, start and stop).

Each node is both broker and KRaft controller, and the three are the quorum's voters,
so the cluster keeps a controller, every partition a leader and every `acks=all`
write two in-sync copies while any one node is down. `bench/chaos.py` and
`tests/test_chaos.py` kill (SIGKILL) and restart its nodes under a running stream.

    with private_cluster(tmp / "kafka") as cluster:   # nodes on free ports, topics created
        cluster.bootstrap                              # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        kill_node(cluster, 1); restart_node(cluster, 1)
        wait_until_healthy(cluster, timeout=120)       # every node back, every replica in sync

Always nodes of its own: an existing cluster (KAFKA_BOOTSTRAP) is not one whose
brokers a benchmark may kill.
"""
from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra import broker
from infra.broker import BrokerConfig, BrokerError
from infra.waiting import wait_for
from streams import kafka_clients
from streams.settings import get_settings

log = logging.getLogger(__name__)

REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2  # an acks=all write is on two nodes before it is acknowledged


@dataclass(frozen=True)
class ClusterConfig:
    """The nodes of one local cluster and the id their stores were formatted with."""

    nodes: tuple[BrokerConfig, ...]
    cluster_id: str

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @classmethod
    def on_free_ports(cls, data_dir: Path, size: int = 3, die_with_parent: bool = True,
                      default_partitions: int | None = None, heap: str = "512m") -> ClusterConfig:
        ports = broker.free_ports(2 * size)
        voters = ",".join(f"{i + 1}@127.0.0.1:{ports[2 * i + 1]}" for i in range(size))
        replication = min(REPLICATION_FACTOR, size)
        nodes = tuple(
            BrokerConfig(
                data_dir=Path(data_dir) / f"node-{i + 1}", port=ports[2 * i], controller_port=ports[2 * i + 1],
                heap=heap, default_partitions=default_partitions or get_settings().member_partitions,
                die_with_parent=die_with_parent, node_id=i + 1, quorum_voters=voters,
                replication_factor=replication, min_insync_replicas=min(MIN_INSYNC_REPLICAS, replication),
            )
            for i in range(size)
        )
        return cls(nodes=nodes, cluster_id=broker.new_cluster_id())


def start_cluster(cluster: ClusterConfig, libs: Path | None = None, timeout: float = 120.0) -> float:
    """Format and start every node, then wait until all of them are registered brokers;
    return the seconds it took. A node answers only once a quorum of voters runs, so the
    processes start first and the waiting comes after."""
    started = time.monotonic()
    libs = libs or broker.fetch_jars()
    broker.require_tools("java")
    with ThreadPoolExecutor(len(cluster.nodes)) as pool:  # three JVMs formatting: in parallel
        list(pool.map(lambda node: broker.prepare(node, libs, cluster.cluster_id), cluster.nodes))
    try:
        for node in cluster.nodes:  # from this thread: see broker.launch on die_with_parent
            broker.launch(node, libs, cluster.cluster_id)
        for node in cluster.nodes:
            broker.wait_until_ready(node.bootstrap, timeout, broker.running_pid(node), node)
        wait_until_healthy(cluster, timeout - (time.monotonic() - started), in_sync=False)
    except (BrokerError, TimeoutError):
        stop_cluster(cluster)
        raise
    seconds = time.monotonic() - started
    log.info("Kafka %s cluster of %d nodes answered on %s after %.1f s",
             broker.kafka_version(), len(cluster.nodes), cluster.bootstrap, seconds)
    return seconds


def stop_cluster(cluster: ClusterConfig, timeout: float = 20.0) -> None:
    """Stop every node at once (one by one, the last nodes would wait for a quorum that
    is already gone); a node still up after `timeout` is killed."""
    with ThreadPoolExecutor(len(cluster.nodes)) as pool:
        list(pool.map(lambda node: broker.stop(node, timeout=timeout), cluster.nodes))


def kill_node(cluster: ClusterConfig, index: int) -> None:
    """SIGKILL node `index` (0-based): no controlled shutdown, no flush."""
    if not broker.stop(cluster.nodes[index], timeout=30.0, sig=signal.SIGKILL):
        raise BrokerError(f"node {index + 1} of the cluster was not running")


def restart_node(cluster: ClusterConfig, index: int, timeout: float = 90.0) -> float:
    """Start node `index` again on its own store; return the seconds until it answered.
    (From the thread that started the cluster: see broker.launch on die_with_parent.)"""
    node = cluster.nodes[index]
    started = time.monotonic()
    pid = broker.launch(node, cluster_id=cluster.cluster_id)
    broker.wait_until_ready(node.bootstrap, timeout, pid, node)
    return time.monotonic() - started


def node_running(cluster: ClusterConfig, index: int) -> bool:
    return broker.running_pid(cluster.nodes[index]) is not None


# --- health -----------------------------------------------------------------------------

def registered_brokers(bootstrap: str) -> set[int]:
    """The node ids the cluster's metadata lists as live brokers."""
    admin = kafka_clients.admin(bootstrap, client_id="hirestream-cluster-probe", request_timeout_ms=5000)
    try:
        return {b["broker_id"] for b in admin.describe_cluster()["brokers"]}
    finally:
        admin.close()


def out_of_sync(bootstrap: str) -> list[str]:
    """Every partition, of every topic, whose in-sync replicas are fewer than its replicas
    ("topic-partition isr/replicas"); empty when the cluster is whole again."""
    admin = kafka_clients.admin(bootstrap, client_id="hirestream-cluster-probe", request_timeout_ms=5000)
    try:
        lagging = []
        for topic in admin.describe_topics():
            for part in topic["partitions"]:
                isr, replicas = part["isr_nodes"], part["replica_nodes"]
                if len(isr) < len(replicas) or part["leader_id"] < 0:
                    lagging.append(f"{topic['name']}-{part['partition_index']} {len(isr)}/{len(replicas)}")
        return sorted(lagging)
    finally:
        admin.close()


def wait_until_healthy(cluster: ClusterConfig, timeout: float, in_sync: bool = True) -> float:
    """Wait until every node is a registered broker and (with `in_sync`) every partition
    has all its replicas in sync again; return the seconds waited."""
    from kafka.errors import KafkaError

    started = time.monotonic()
    want = {node.node_id for node in cluster.nodes}
    last: dict[str, object] = {}

    def healthy() -> bool:
        last["brokers"] = registered_brokers(cluster.bootstrap)
        if last["brokers"] != want:
            return False
        if in_sync:
            last["out_of_sync"] = out_of_sync(cluster.bootstrap)
            return not last["out_of_sync"]
        return True
    try:
        wait_for(healthy, timeout, f"{len(want)} brokers registered"
                 + (" and every replica in sync" if in_sync else ""),
                 interval=0.25, ignore=(KafkaError, OSError))
    except TimeoutError as err:
        raise TimeoutError(f"{err}; last seen: {last}") from None
    return time.monotonic() - started


def create_topics(cluster: ClusterConfig, timeout: float = 60.0) -> None:
    """The map's topics with replication factor 3 (`broker.create_topics`). A created
    topic reaches each node's metadata a moment later, and each admin call may ask
    another node: its count check can see none of the topics one node has just listed
    (seen in a fresh-clone `make test`: the check after a wait that one node passed
    failed on the next). So the whole call, which only creates what is missing, is
    repeated until its check passes, and the last refusal is kept for the timeout."""
    last: list[BrokerError] = []

    def created() -> bool:
        try:
            broker.create_topics(cluster.bootstrap, replication_factor=REPLICATION_FACTOR)
            return True
        except BrokerError as err:
            log.info("topics not yet in the metadata everywhere (%s); waiting", err)
            last[:] = [err]
            return False
    try:
        wait_for(created, timeout, "every topic of the map in the cluster's metadata", interval=0.5)
    except TimeoutError as err:
        raise BrokerError(f"{err}; last: {last[0] if last else 'none'}") from None


@contextmanager
def private_cluster(data_dir: Path, timeout: float = 180.0, **options) -> Iterator[ClusterConfig]:
    """A three-node cluster for one benchmark or test, with the map's topics (replication
    factor 3); stopped at the end. Unlike `broker.private_broker` it sets no environment
    variable: whoever uses it passes `cluster.bootstrap` (and `replication_factor=3` to
    the workers, for their changelog topics) explicitly, so the rest of a test session
    keeps its own broker."""
    cluster = ClusterConfig.on_free_ports(data_dir, **options)
    start_cluster(cluster, timeout=timeout)
    try:
        create_topics(cluster)
        yield cluster
    finally:
        stop_cluster(cluster)
