"""The real Kafka broker the project starts, and proof that its topics are plain Kafka.

Unit tests of the configuration run without a broker; the `kafka`-marked tests use
the session's broker (`kafka_bootstrap`) through three independent clients:
kafka-python, aiokafka (what faust runs on) and Debian's kcat (librdkafka).
"""
from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest

from infra import broker
from infra.waiting import wait_for
from streams.settings import get_settings
from streams.topics import ALL_TOPICS, MEMBERS, dlq_name
from tests.kafka_helpers import java_partition, require_kcat, unique_name

# --- without a broker ----------------------------------------------------------------


def test_topic_plan_has_every_topic_and_its_dead_letter_topic():
    plan = broker.topic_plan(member_partitions=5)
    assert set(plan) == {t.name for t in ALL_TOPICS} | {dlq_name(t.name) for t in ALL_TOPICS}
    assert set(plan.values()) == {5}


def test_server_properties_make_one_node_kraft_broker_on_the_given_ports(tmp_path):
    cfg = broker.BrokerConfig(data_dir=tmp_path, port=31000, controller_port=31001,
                              default_partitions=4)
    props = dict(line.split("=", 1) for line in broker.server_properties(cfg).splitlines())
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:31001"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:31000,CONTROLLER://127.0.0.1:31001"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:31000"
    assert props["log.dirs"] == str(tmp_path / "store")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "true"
    assert props["num.partitions"] == "4"


def test_java_classpath_is_absolute_because_the_broker_runs_in_its_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = broker.BrokerConfig(data_dir=tmp_path / "kafka")
    cmd = broker.java_command(cfg, Path("rel/libs"), "kafka.Kafka", "server.properties")
    assert cmd[cmd.index("-cp") + 1] == f"{tmp_path}/rel/libs/*"
    assert cmd[-2:] == ["kafka.Kafka", "server.properties"]


def test_config_from_settings_puts_the_controller_on_the_next_port(tmp_path):
    settings = get_settings().model_copy(update={"broker_listen": "127.0.0.1:40100"})
    cfg = broker.BrokerConfig.from_settings(settings, data_dir=tmp_path)
    assert (cfg.bootstrap, cfg.controller_port, cfg.data_dir) == ("127.0.0.1:40100", 40101, tmp_path)


@pytest.mark.parametrize("bad", ["localhost", ":9092", "host:port", ""])
def test_split_bootstrap_rejects_addresses_without_host_and_port(bad):
    with pytest.raises(broker.BrokerError, match="host:port"):
        broker.split_bootstrap(bad)


def test_free_ports_are_distinct_and_bindable():
    ports = broker.free_ports(4)
    assert len(set(ports)) == 4
    assert not any(broker.port_open("127.0.0.1", p, timeout=0.2) for p in ports)


def test_cluster_id_is_kafkas_22_character_uuid_text():
    ids = {broker.new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and "=" not in i and "+" not in i and "/" not in i for i in ids)
    # the storage tool's `-t <id>` would take a leading "-" for an option (1 in 64 ids)
    assert not any(i.startswith("-") for i in ids)


def test_kafka_version_is_read_from_the_pom():
    assert broker.kafka_version().startswith("3.9.")


def test_wait_for_returns_the_value_and_times_out_naming_what_it_waited_for():
    calls = iter([0, None, 7])
    assert wait_for(lambda: next(calls), timeout=5, what="third call", interval=0) == 7
    with pytest.raises(TimeoutError, match="the impossible"):
        wait_for(lambda: False, timeout=0.05, what="the impossible", interval=0.01)


# --- against the real broker ---------------------------------------------------------

def _consume_all(bootstrap: str, topic: str, want: set[bytes], timeout: float = 30.0):
    """kafka-python: read `topic` from the start until every value in `want` was seen.

    Returns {value: (partition, key)} for those values.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=500)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        seen: dict[bytes, tuple[int, bytes]] = {}

        def all_seen() -> bool:
            for batch in consumer.poll(timeout_ms=200).values():
                for rec in batch:
                    if rec.value in want:
                        seen[rec.value] = (rec.partition, rec.key)
            return want <= seen.keys()

        wait_for(all_seen, timeout, f"{len(want)} records on {topic}", interval=0)
        return seen
    finally:
        consumer.close()


def _create_topic(bootstrap: str, partitions: int = 3) -> str:
    from kafka import KafkaAdminClient

    name = unique_name("test-broker")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}},
                            wait_for_metadata=True)
    finally:
        admin.close()
    return name


@pytest.mark.kafka
def test_map_topics_exist_with_the_configured_partition_counts(kafka_bootstrap):
    plan = broker.topic_plan(get_settings().member_partitions)
    assert broker.partition_counts(kafka_bootstrap, list(plan)) == plan


@pytest.mark.kafka
def test_create_topics_again_creates_nothing_and_changes_nothing(kafka_bootstrap):
    before = broker.partition_counts(kafka_bootstrap)
    assert broker.create_topics(kafka_bootstrap) == []
    assert broker.partition_counts(kafka_bootstrap) == before


def _topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    finally:
        admin.close()
    return {k: v["value"] for k, v in described["topic"][topic].items()}


@pytest.mark.kafka
def test_replica_sources_keep_their_records_for_ever(kafka_bootstrap):
    """Profiles are compacted and hires never expire (serving/online/replica.py bootstraps
    from them); raw action events keep the broker's week."""
    assert _topic_configs(kafka_bootstrap, "members")["cleanup.policy"] == "compact"
    assert _topic_configs(kafka_bootstrap, "hires")["retention.ms"] == "-1"
    assert _topic_configs(kafka_bootstrap, "member-actions")["cleanup.policy"] == "delete"


@pytest.mark.kafka
def test_create_topics_corrects_the_configs_of_an_existing_topic(kafka_bootstrap):
    """A cluster whose `members` topic was made before it was compacted gets compaction."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "members",
                                            configs={"cleanup.policy": "delete"})], incremental=True)
    finally:
        admin.close()
    wait_for(lambda: _topic_configs(kafka_bootstrap, "members")["cleanup.policy"] == "delete", 30,
             "the broker to show the old config")
    assert broker.create_topics(kafka_bootstrap) == []
    wait_for(lambda: _topic_configs(kafka_bootstrap, "members")["cleanup.policy"] == "compact", 30,
             "members compacted again")


@pytest.mark.kafka
def test_create_topics_refuses_a_map_topic_with_another_partition_count(kafka_bootstrap):
    have = get_settings().member_partitions
    with pytest.raises(broker.BrokerError, match=f"members has {have} want {have + 1}"):
        broker.create_topics(kafka_bootstrap, member_partitions=have + 1)


@pytest.mark.kafka
def test_kafka_python_round_trip_keeps_keys_on_the_java_partition(kafka_bootstrap):
    from kafka import KafkaProducer

    topic = _create_topic(kafka_bootstrap, partitions=3)
    sent = {f"v{i}-{uuid.uuid4().hex}".encode(): f"member-{i}".encode() for i in range(12)}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        for value, key in sent.items():
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()
    got = _consume_all(kafka_bootstrap, topic, set(sent))
    assert {v: k for v, (_, k) in got.items()} == sent
    assert {v: p for v, (p, _) in got.items()} == {v: java_partition(k, 3) for v, k in sent.items()}


@pytest.mark.kafka
def test_kcat_produces_to_a_map_topic_and_kafka_python_reads_it(kafka_bootstrap):
    kcat = require_kcat()
    run_id = uuid.uuid4().hex
    lines = [(f"m-{run_id}-{i}", f'{{"kcat": {i}, "run": "{run_id}"}}') for i in range(6)]
    # librdkafka's default partitioner is CRC32-based; murmur2_random is the Java
    # client's, so keys land where kafka-python, aiokafka and faust put them.
    subprocess.run(
        [kcat, "-b", kafka_bootstrap, "-P", "-t", MEMBERS.name, "-K", "|",
         "-X", "topic.partitioner=murmur2_random"],
        input="".join(f"{k}|{v}\n" for k, v in lines), text=True, check=True, timeout=60,
    )
    want = {v.encode(): k.encode() for k, v in lines}
    got = _consume_all(kafka_bootstrap, MEMBERS.name, set(want))
    n = broker.partition_counts(kafka_bootstrap, [MEMBERS.name])[MEMBERS.name]
    assert {v: k for v, (_, k) in got.items()} == want
    assert {v: p for v, (p, _) in got.items()} == {v: java_partition(k, n) for v, k in want.items()}


@pytest.mark.kafka
def test_kafka_python_produces_to_a_map_topic_and_kcat_reads_it(kafka_bootstrap):
    from kafka import KafkaProducer

    kcat = require_kcat()
    run_id = uuid.uuid4().hex
    sent = {f"kp-{run_id}-{i}": f"m-{i}" for i in range(6)}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        partitions = {v: producer.send(MEMBERS.name, key=k.encode(), value=v.encode())
                      .get(timeout=30).partition for v, k in sent.items()}
    finally:
        producer.close()
    # -e: exit at the end of every partition, so this returns once all is read. The
    # topic is shared with other tests, some of which send invalid UTF-8 on purpose.
    out = subprocess.run(
        [kcat, "-b", kafka_bootstrap, "-C", "-t", MEMBERS.name, "-o", "beginning", "-e", "-q",
         "-f", "%p|%k|%s\n"],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode(errors="replace")
    read = {}
    for line in out.splitlines():
        part, key, value = line.split("|", 2)
        if value in sent:
            read[value] = (int(part), key)
    assert read == {v: (partitions[v], k) for v, k in sent.items()}


@pytest.mark.kafka
def test_aiokafka_round_trip_through_a_consumer_group(kafka_bootstrap):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = _create_topic(kafka_bootstrap, partitions=3)
    sent = {f"a{i}-{uuid.uuid4().hex}".encode(): f"member-{i}".encode() for i in range(9)}

    async def round_trip() -> dict[bytes, tuple[int, bytes]]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for value, key in sent.items():
                await producer.send_and_wait(topic, value=value, key=key)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=kafka_bootstrap, group_id=unique_name("test-group"),
            auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=2000,
        )
        await consumer.start()
        got: dict[bytes, tuple[int, bytes]] = {}
        try:
            async with asyncio.timeout(60):
                async for rec in consumer:
                    got[rec.value] = (rec.partition, rec.key)
                    if set(sent) <= got.keys():
                        break
            await consumer.commit()
            committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
        finally:
            await consumer.stop()
        assert sum(o or 0 for o in committed.values()) == len(sent)  # the group's offsets moved past all of them
        return got

    got = asyncio.run(round_trip())
    assert {v: k for v, (_, k) in got.items()} == sent
    assert {v: p for v, (p, _) in got.items()} == {v: java_partition(k, 3) for v, k in sent.items()}


@pytest.mark.kafka
def test_broker_lifecycle_start_is_idempotent_and_stop_ends_it(tmp_path):
    """A second broker on its own ports: start twice, one process; stop, nothing answers."""
    port, controller_port = broker.free_ports(2)
    cfg = broker.BrokerConfig(data_dir=tmp_path / "kafka", port=port, controller_port=controller_port,
                              die_with_parent=True)
    libs = broker.fetch_jars()
    try:
        pid = broker.start(cfg, libs, timeout=120)
        assert broker.running_pid(cfg) == pid
        assert broker.start(cfg, libs, timeout=30) == pid
        assert broker.answers(cfg.bootstrap)
    finally:
        was_running = broker.stop(cfg)
    assert was_running
    assert broker.running_pid(cfg) is None and not cfg.pid_path.exists()
    assert not broker.answers(cfg.bootstrap, timeout=1)
    assert (cfg.store_dir / "meta.properties").is_file()  # formatted once, kept for restarts


@pytest.mark.kafka
def test_a_test_broker_ends_when_the_process_that_started_it_is_killed(tmp_path):
    import os
    import signal
    import sys

    script = (
        "import sys; from pathlib import Path; from infra import broker\n"
        "p, c = broker.free_ports(2)\n"
        f"cfg = broker.BrokerConfig(data_dir=Path({str(tmp_path)!r}), port=p, controller_port=c,"
        " die_with_parent=True)\n"
        "print(broker.start(cfg, broker.fetch_jars(), timeout=120), flush=True)\n"
        "sys.stdin.read()\n"  # hold until killed
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=Path(broker.__file__).parents[1])
    try:
        java_pid = int(parent.stdout.readline())
        assert Path(f"/proc/{java_pid}").exists()
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)

    def gone() -> bool:
        try:
            os.kill(java_pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=60, what=f"broker pid {java_pid} to exit after its parent was killed")
