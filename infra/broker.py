"""A real single-node Apache Kafka broker (KRaft, no ZooKeeper), run from Maven Central jars.

(`infra/cluster.py` runs three of these nodes as one replicated cluster, from the
same pieces: a node's id, its quorum's voters and its replication settings are
parameters of `BrokerConfig`, defaulting to the one node below.)

No Kafka tarball is reachable here and PyPI has no Kafka broker, so the jars come from
Maven Central through `infra/kafka/pom.xml` (once, into the git-ignored cache) and the
broker runs as `java -cp '<libs>/*' kafka.Kafka server.properties`. The same functions
serve `hirestream broker ...`, `make run`, the test fixtures and CI.

Two settings (streams.settings, docs/SETTINGS.md) say where the broker is:
- `KAFKA_BOOTSTRAP=host:port` points at an existing cluster: nothing is started and
  `start` only waits for it to answer (and creates the topics).
- `HIRESTREAM_BROKER_LISTEN=host:port` moves the broker this module starts
  (default 127.0.0.1:19092; its KRaft controller listens on the next port up).

Clients reach it in plain text, or, with `BrokerConfig(secured=SaslSslListener(...))`,
over TLS with SASL logins as a managed cluster asks (tests/test_kafka_security.py).
Every client here is made by `streams.kafka_clients`, with the security settings.
"""
from __future__ import annotations

import base64
import fcntl
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from streams import kafka_clients
from streams.settings import Settings, get_settings
from streams.topics import ALL_TOPICS, dlq_name

log = logging.getLogger(__name__)

KAFKA_POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
EXTERNAL_BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP"
# Set while a test session runs its own broker: KAFKA_BOOTSTRAP then names ours, not a user's.
PRIVATE_SESSION_ENV = "HIRESTREAM_SESSION_BROKER"
PID_FILE = "broker.pid"


class BrokerError(RuntimeError):
    """The broker could not be fetched, formatted, started, reached or stopped."""


@dataclass(frozen=True)
class SaslSslListener:
    """Clients connect over TLS and log in with SASL, PLAIN or SCRAM-SHA-512 (as a managed
    cluster asks); the KRaft controller's listener stays plain text on loopback.

    `keystore` is one PEM file holding the broker's private key (unencrypted PKCS#8) and
    its certificate chain (Kafka's `ssl.keystore.type=PEM`); the certificate must name
    the listener's host. `ca` is the PEM certificate of the CA that signed it: the broker
    checks its own certificate against it when it connects to itself. Each of `users`
    may log in with either mechanism (PLAIN checks the JAAS config, SCRAM the credentials
    written into the store when it is formatted). The broker logs in to itself
    (inter-broker traffic) as `broker_user` over PLAIN."""

    keystore: Path
    ca: Path
    users: tuple[tuple[str, str], ...] = field(repr=False)  # (name, password)
    broker_password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    broker_user: str = "hirestream-broker"

    name = "SASL_SSL"  # the listener's name, and its security protocol
    mechanisms = ("PLAIN", "SCRAM-SHA-512")

    def __post_init__(self) -> None:
        # They go inside a JAAS string and the storage tool's `[name=..,password=..]`.
        for name, password in self.users:
            if not (_PLAIN_WORD.fullmatch(name) and _PLAIN_WORD.fullmatch(password)):
                raise BrokerError(f"user {name!r}: names and passwords of the secured listener may "
                                  "hold only letters, digits, '-', '_' and '.'")


_PLAIN_WORD = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class BrokerConfig:
    """Where one local broker keeps its files and which loopback ports it takes."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 19092
    controller_port: int = 19093
    heap: str = "512m"
    default_partitions: int = 3  # for topics that clients auto-create (faust changelogs)
    # The internal offsets/transactions topics default to 50 partitions each; a
    # one-node dev broker creates them faster with fewer.
    internal_partitions: int = 4
    # Test and bench brokers end with the process that started them, even when it is
    # killed; `hirestream broker start` leaves its broker running on purpose.
    die_with_parent: bool = False
    # A node of a cluster (infra/cluster.py): its id and the KRaft quorum's voters
    # ("1@host:port,2@host:port,..."); None: this node alone. The replication settings
    # apply to the internal topics and to topics created without a replication factor.
    node_id: int = 1
    quorum_voters: str | None = None
    replication_factor: int = 1
    min_insync_replicas: int = 1
    # None: clients connect in plain text; else over TLS with SASL logins.
    secured: SaslSslListener | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def controller_quorum_voters(self) -> str:
        return self.quorum_voters or f"{self.node_id}@{self.host}:{self.controller_port}"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_path(self) -> Path:
        return self.data_dir / "log4j.properties"

    @property
    def store_dir(self) -> Path:  # Kafka's `log.dirs`: the partitions' segment files
        return self.data_dir / "store"

    @property
    def server_log(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def console_log(self) -> Path:  # the JVM's own stdout/stderr (crashes before log4j)
        return self.data_dir / "console.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / PID_FILE

    @classmethod
    def from_settings(cls, settings: Settings | None = None, data_dir: Path | None = None) -> BrokerConfig:
        settings = settings or get_settings()
        host, port = split_bootstrap(settings.broker_listen)
        return cls(
            data_dir=Path(data_dir) if data_dir else settings.data_dir / "kafka",
            host=host,
            port=port,
            controller_port=port + 1,
            default_partitions=settings.member_partitions,
        )


def split_bootstrap(bootstrap: str) -> tuple[str, int]:
    """'host:port' -> (host, port); only the first address of a list is used."""
    first = bootstrap.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise BrokerError(f"bootstrap address must be host:port, got {bootstrap!r}")
    return host, int(port)


def external_bootstrap() -> str | None:
    """The existing cluster named by KAFKA_BOOTSTRAP (the environment or `.env`), or None
    when we run our own."""
    return get_settings().kafka_bootstrap or None


# --- jars ------------------------------------------------------------------------------

def kafka_version(pom: Path = KAFKA_POM) -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text())
    if not match:
        raise BrokerError(f"no <kafka.version> property in {pom}")
    return match.group(1).strip()


def libs_dir(cache_dir: Path | None = None) -> Path:
    cache_dir = Path(cache_dir) if cache_dir else get_settings().cache_dir
    return cache_dir / f"kafka-{kafka_version()}" / "libs"


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise BrokerError(
            f"{', '.join(missing)} not found on PATH; the broker needs Java 17+ and Maven 3.8+ "
            "(Debian: apt-get install -y openjdk-17-jre-headless maven)"
        )


def jars_present(libs: Path) -> bool:
    # The marker is written last, so a fetch killed half-way is not taken as done.
    return (libs / ".complete").is_file()


def fetch_jars(cache_dir: Path | None = None) -> Path:
    """Copy the broker's jars from Maven Central into the cache once; return the libs dir.

    Idempotent and safe to call from several processes at once (a file lock keeps
    one fetch at a time; the others find the jars there when they get the lock).
    """
    libs = libs_dir(cache_dir)
    if jars_present(libs):
        return libs
    require_tools("mvn")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jars_present(libs):
            return libs
        log.info("fetching Kafka %s jars from Maven Central into %s", kafka_version(), libs)
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
        cmd = [
            "mvn", "-q", "-B", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            raise BrokerError(
                f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n"
                f"{(done.stdout + done.stderr)[-3000:]}"
            )
        (staging / ".complete").write_text(kafka_version() + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs


# --- configuration files -------------------------------------------------------------

def server_properties(cfg: BrokerConfig) -> str:
    """The broker's configuration: a node that is both broker and KRaft controller (one
    node alone by default)."""
    client = cfg.secured.name if cfg.secured else "PLAINTEXT"
    props = {
        "process.roles": "broker,controller",
        "node.id": cfg.node_id,
        "controller.quorum.voters": cfg.controller_quorum_voters,
        "listeners": f"{client}://{cfg.bootstrap},CONTROLLER://{cfg.host}:{cfg.controller_port}",
        "advertised.listeners": f"{client}://{cfg.bootstrap}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": client,
        "listener.security.protocol.map": f"{client}:{client},CONTROLLER:PLAINTEXT",
        **(sasl_ssl_properties(cfg.secured) if cfg.secured else {}),
        "log.dirs": cfg.store_dir,
        # One node: every internal topic has a single replica (a cluster: its own).
        "offsets.topic.replication.factor": cfg.replication_factor,
        "offsets.topic.num.partitions": cfg.internal_partitions,
        "transaction.state.log.replication.factor": cfg.replication_factor,
        "transaction.state.log.min.isr": cfg.min_insync_replicas,
        "transaction.state.log.num.partitions": cfg.internal_partitions,
        "default.replication.factor": cfg.replication_factor,
        "min.insync.replicas": cfg.min_insync_replicas,
        # A consumer group's first join should not wait 3 s for more members.
        "group.initial.rebalance.delay.ms": 0,
        # faust creates its changelog and repartition topics itself.
        "auto.create.topics.enable": "true",
        "num.partitions": cfg.default_partitions,
        "delete.topic.enable": "true",
        "num.network.threads": 2,
        "num.io.threads": 4,
        "log.retention.hours": 168,
        "log.segment.bytes": 64 * 1024 * 1024,
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def sasl_ssl_properties(listener: SaslSslListener) -> dict[str, str]:
    """The secured listener's TLS identity and its SASL logins (Kafka's `listener.name.
    <listener>.<mechanism>.sasl.jaas.config`, which the broker logs as [hidden])."""
    prefix = f"listener.name.{listener.name.lower()}"
    plain_users = "".join(f' user_{name}="{password}"' for name, password in
                          ((listener.broker_user, listener.broker_password), *listener.users))
    return {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(listener.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(listener.ca),
        "sasl.enabled.mechanisms": ",".join(listener.mechanisms),
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        f"{prefix}.plain.sasl.jaas.config":
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{listener.broker_user}" password="{listener.broker_password}"{plain_users};',
        f"{prefix}.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    }


def scram_arguments(listener: SaslSslListener | None) -> list[str]:
    """The storage tool's `--add-scram` for each user: KRaft keeps SCRAM credentials in
    its metadata log, and formatting is the one moment nothing needs to log in to add them."""
    if listener is None:
        return []
    return [arg for name, password in listener.users
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")]


def log4j_properties(cfg: BrokerConfig) -> str:
    return (
        "log4j.rootLogger=INFO, file\n"
        "log4j.appender.file=org.apache.log4j.RollingFileAppender\n"
        f"log4j.appender.file.File={cfg.server_log}\n"
        "log4j.appender.file.MaxFileSize=20MB\n"
        "log4j.appender.file.MaxBackupIndex=2\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        # The per-request and state-change chatter says nothing a developer needs.
        "log4j.logger.kafka.request.logger=WARN\n"
        "log4j.logger.state.change.logger=WARN\n"
    )


def new_cluster_id() -> str:
    """Kafka's Uuid text form: 16 random bytes, URL-safe base64, no padding.

    Like Kafka's own `Uuid.randomUuid`, never one that starts with "-": the storage
    tool would read it as an option (1 format in 64 failed that way)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def java_command(cfg: BrokerConfig, libs: Path, main: str, *args: str) -> list[str]:
    return [
        "java", "-Xms128m", f"-Xmx{cfg.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{cfg.log4j_path}",
        # Absolute: the broker runs with its data dir as working directory.
        "-cp", f"{Path(libs).resolve()}/*", main, *args,
    ]


def prepare(cfg: BrokerConfig, libs: Path, cluster_id: str | None = None) -> None:
    """Write the configuration files and format the KRaft store once (every node of a
    cluster with the same `cluster_id`; a new one by default)."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    cfg.properties_path.touch(mode=0o600)  # a secured listener's file holds its users' passwords
    cfg.properties_path.write_text(server_properties(cfg))
    cfg.log4j_path.write_text(log4j_properties(cfg))
    if (cfg.store_dir / "meta.properties").is_file():
        return
    cmd = java_command(
        cfg, libs, "kafka.tools.StorageTool",
        "format", "-t", cluster_id or new_cluster_id(), "-c", str(cfg.properties_path), "--ignore-formatted",
        *scram_arguments(cfg.secured),
    )
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerError(
            f"formatting the KRaft store in {cfg.store_dir} failed (exit {done.returncode}):\n"
            f"{(done.stdout + done.stderr)[-3000:]}"
        )


# --- processes -----------------------------------------------------------------------

# Brokers this process started, kept so they are reaped (and Popen does not warn).
_children: dict[int, subprocess.Popen] = {}


def _alive(pid: int) -> bool:
    if pid in _children:
        return _children[pid].poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(cfg: BrokerConfig) -> int | None:
    """The pid of this data dir's broker if it runs (a stale or reused pid gives None)."""
    try:
        pid = int(cfg.pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return None
    # A pid is reused after a crash; only our own broker's command line counts.
    if "kafka.Kafka" not in cmdline or str(cfg.properties_path) not in cmdline:
        return None
    return pid if _alive(pid) else None


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` distinct loopback ports free right now (held open together, so no repeats)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for sock in socks:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a Kafka client can fetch cluster metadata with a broker in it."""
    from kafka.errors import KafkaError

    host, port = split_bootstrap(bootstrap)
    if not port_open(host, port):  # skip the client's own retry chatter while nothing listens
        return False
    ms = int(timeout * 1000)
    try:
        admin = kafka_clients.admin(bootstrap, client_id="hirestream-probe",
                                    request_timeout_ms=ms, bootstrap_timeout_ms=ms)
    except KafkaError:
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except KafkaError:
        return False
    finally:
        admin.close()


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return f"({path} does not exist)"


def wait_until_ready(bootstrap: str, timeout: float, pid: int | None = None,
                     cfg: BrokerConfig | None = None) -> float:
    """Poll until the broker answers; return the seconds waited. Fails fast if `pid` dies."""
    start = time.monotonic()
    while True:
        if answers(bootstrap):
            return time.monotonic() - start
        if pid is not None and not _alive(pid):
            detail = f"\n{_tail(cfg.console_log)}\n{_tail(cfg.server_log)}" if cfg else ""
            raise BrokerError(f"the broker (pid {pid}) exited before answering on {bootstrap}{detail}")
        if time.monotonic() - start > timeout:
            where = f"; see {cfg.server_log}" if cfg else ""
            raise BrokerError(f"no Kafka broker answered on {bootstrap} within {timeout:.0f} s{where}")
        time.sleep(0.2)  # polling interval, not synchronization: the loop checks a condition


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when its parent dies."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(cfg: BrokerConfig, libs: Path | None = None, timeout: float = 60.0) -> int:
    """Start the broker in the background (its own session, so it outlives the caller).

    Returns its pid once it answers. Idempotent: a broker already running from this
    data dir is left as it is.
    """
    pid = running_pid(cfg)
    if pid is not None:
        wait_until_ready(cfg.bootstrap, timeout, pid, cfg)
        return pid
    pid = launch(cfg, libs)
    try:
        waited = wait_until_ready(cfg.bootstrap, timeout, pid, cfg)
    except (BrokerError, kafka_clients.KafkaAccessRefused):  # it never answered, or not to us
        stop(cfg)
        raise
    log.info("Kafka %s broker (pid %d) answered on %s after %.1f s",
             kafka_version(), pid, cfg.bootstrap, waited)
    return pid


def launch(cfg: BrokerConfig, libs: Path | None = None, cluster_id: str | None = None) -> int:
    """Start the broker process and return its pid without waiting for it to answer
    (a cluster's nodes answer only once a quorum of them runs: infra/cluster.py).

    With `die_with_parent`, call this from a thread that lives as long as the broker
    should: Linux sends the parent-death signal when the *thread* that forked exits."""
    for port in (cfg.port, cfg.controller_port):
        if port_open(cfg.host, port):
            raise BrokerError(
                f"{cfg.host}:{port} is already taken by another process; stop it, set "
                f"KAFKA_BOOTSTRAP to use a cluster that runs there, or choose another port "
                f"with HIRESTREAM_BROKER_LISTEN"
            )
    require_tools("java")
    libs = libs or fetch_jars()
    prepare(cfg, libs, cluster_id)
    cmd = java_command(cfg, libs, "kafka.Kafka", str(cfg.properties_path))
    with open(cfg.console_log, "ab") as console:
        proc = subprocess.Popen(
            cmd, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=cfg.data_dir, start_new_session=True,
            preexec_fn=_die_with_parent if cfg.die_with_parent else None,
        )
    _children[proc.pid] = proc
    cfg.pid_path.write_text(f"{proc.pid}\n")
    return proc.pid


def stop(cfg: BrokerConfig, timeout: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> bool:
    """SIGTERM (Kafka shuts down cleanly on it), wait, then SIGKILL. True if one was running.

    `sig=SIGKILL` kills it at once, as a machine failure would (infra/cluster.py's faults)."""
    pid = running_pid(cfg)
    if pid is None:
        cfg.pid_path.unlink(missing_ok=True)
        return False
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        log.warning("broker pid %d ignored %s for %.0f s; killing it", pid, sig.name, timeout)
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    _children.pop(pid, None)
    cfg.pid_path.unlink(missing_ok=True)
    return True


def ensure_running(cfg: BrokerConfig | None = None, timeout: float = 60.0) -> str:
    """The bootstrap address of a broker that answers: KAFKA_BOOTSTRAP's, or our own started now."""
    external = external_bootstrap()
    if external:
        wait_until_ready(external, timeout)
        return external
    cfg = cfg or BrokerConfig.from_settings()
    start(cfg, timeout=timeout)
    return cfg.bootstrap


# --- topics --------------------------------------------------------------------------

def topic_plan(member_partitions: int) -> dict[str, int]:
    """Every topic of the map, and its dead-letter topic, with its partition count."""
    plan: dict[str, int] = {}
    for spec in ALL_TOPICS:
        n = spec.partition_count(member_partitions)
        plan[spec.name] = n
        plan[dlq_name(spec.name)] = n
    return plan


def config_plan() -> dict[str, dict[str, str]]:
    """The topic-level configs each topic of the map must have (dead-letter topics keep
    the broker's defaults)."""
    return {spec.name: spec.topic_configs() for spec in ALL_TOPICS}


def correct_topic_configs(bootstrap: str, plan: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Set the planned configs on existing topics that differ (a cluster whose topics
    were created before the plan said so); return what was changed, per topic.

    Unlike a partition count, retention and compaction can change in place without
    moving a key: turning `members` from a week's retention into compaction only
    stops Kafka deleting profiles."""
    from kafka.admin import ConfigResource, ConfigResourceType

    if not plan:
        return {}
    admin = kafka_clients.admin(bootstrap, client_id="hirestream-admin")
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in plan], config_filter="all")
        changes = {}
        for name, wanted in plan.items():
            have = _described_topic_configs(described, name)
            diff = {k: v for k, v in wanted.items() if have.get(k) != v}
            if diff:
                changes[name] = diff
        if changes:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=diff)
                                 for name, diff in changes.items()], incremental=True)
        return changes
    finally:
        admin.close()


def _described_topic_configs(described, name: str) -> dict[str, str]:
    """`{key: value}` for one topic out of kafka-python's describe_configs answer."""
    if isinstance(described, dict):  # kafka-python 3: {resource type: {name: {key: {value...}}}}
        for by_name in described.values():
            if name in by_name:
                return {k: (v.get("value") if isinstance(v, dict) else v) for k, v in by_name[name].items()}
    raise BrokerError(f"no configs described for topic {name!r}: {described!r:.300}")


def partition_counts(bootstrap: str, names: list[str] | None = None) -> dict[str, int]:
    """Partitions per existing topic (all topics when `names` is None)."""
    admin = kafka_clients.admin(bootstrap, client_id="hirestream-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [n for n in (names if names is not None else existing) if n in existing]
        if not wanted:
            return {}
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(wanted)}
    finally:
        admin.close()


def create_topics(bootstrap: str, member_partitions: int | None = None,
                  replication_factor: int | None = None) -> list[str]:
    """Create the map's topics that are missing, with their configs (`streams.topics`),
    and correct the configs of existing ones; return the names created.

    An existing topic with another partition count is an error, not something to
    fix quietly: adding partitions would move keys and break co-partitioning.
    """
    from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

    settings = get_settings()
    plan = topic_plan(member_partitions or settings.member_partitions)
    configs = config_plan()
    rf = replication_factor or settings.replication_factor
    have = partition_counts(bootstrap, list(plan))
    missing = {name: n for name, n in plan.items() if name not in have}
    if missing:
        admin = kafka_clients.admin(bootstrap, client_id="hirestream-admin")
        try:
            result = admin.create_topics(
                {name: {"num_partitions": n, "replication_factor": rf, "configs": configs.get(name, {})}
                 for name, n in missing.items()},
                raise_errors=False, wait_for_metadata=True,
            )
        except KafkaError as err:
            # e.g. UnknownBrokerIdError while a new cluster's controller is known before
            # its broker (seen in a fresh-clone `make test`): a refusal callers can wait out
            raise BrokerError(f"creating topics on {bootstrap} failed: {type(err).__name__}: {err}") from err
        finally:
            admin.close()
        for topic in result["topics"]:
            error = for_code(topic["error_code"])
            # Another process may have created it between our look and our create.
            if topic["error_code"] and error is not TopicAlreadyExistsError:
                raise BrokerError(f"creating topic {topic['name']!r} on {bootstrap} failed: "
                                  f"{error.__name__}: {topic.get('error_message')}")
        have = partition_counts(bootstrap, list(plan))
    wrong = {name: (have.get(name), n) for name, n in plan.items() if have.get(name) != n}
    if wrong:
        listing = ", ".join(f"{k} has {h} want {w}" for k, (h, w) in wrong.items())
        raise BrokerError(
            f"topics on {bootstrap} do not match the map: {listing}. Adding partitions would move "
            "members' keys to other partitions than their state (streams/topics.py): run with "
            "HIRESTREAM_MEMBER_PARTITIONS set to the count the topics have, or migrate "
            "(docs/ARCHITECTURE.md, 'Changing the partition count'); a local dev broker can "
            "instead be stopped and its data dir removed (`hirestream broker stop`, then rm -r it)")
    changed = correct_topic_configs(bootstrap, {n: c for n, c in configs.items() if n not in missing})
    if changed:
        log.warning("corrected topic configs on %s: %s", bootstrap, changed)
    return sorted(missing)


@contextmanager
def private_broker(data_dir: Path, timeout: float = 120.0) -> Iterator[str]:
    """A broker for one test session, with the map's topics; yields its bootstrap address.

    With KAFKA_BOOTSTRAP set, that cluster is used and nothing is started. Otherwise
    a broker runs from `data_dir` on free loopback ports, and KAFKA_BOOTSTRAP is set
    to it for the session, so `get_settings()` and any `hirestream` subprocess a
    test starts find it too.
    """
    external = external_bootstrap()
    if external:
        wait_until_ready(external, timeout)
        create_topics(external)
        yield external
        return
    with local_broker(data_dir, get_settings().member_partitions, timeout) as bootstrap:
        os.environ[EXTERNAL_BOOTSTRAP_ENV] = bootstrap
        os.environ[PRIVATE_SESSION_ENV] = bootstrap
        get_settings.cache_clear()
        try:
            yield bootstrap
        finally:
            os.environ.pop(EXTERNAL_BOOTSTRAP_ENV, None)
            os.environ.pop(PRIVATE_SESSION_ENV, None)
            get_settings.cache_clear()


@contextmanager
def isolated_broker(data_dir: Path, timeout: float = 120.0) -> Iterator[str]:
    """A broker of their own for tests whose leftovers would burden every later test
    (e.g. hundreds of 128 KiB hostile messages a fresh worker must re-read). The
    session's KAFKA_BOOTSTRAP stays as it is; on a cluster the user named, that
    cluster is shared (nothing here may start brokers beside it)."""
    external = external_bootstrap()
    if external and os.environ.get(PRIVATE_SESSION_ENV) != external:
        yield external
        return
    with local_broker(data_dir, get_settings().member_partitions, timeout) as bootstrap:
        yield bootstrap


@contextmanager
def local_broker(data_dir: Path, member_partitions: int, timeout: float = 120.0) -> Iterator[str]:
    """A broker of its own on free loopback ports, its topics made with
    `member_partitions`; yields its bootstrap address and changes no environment
    (for a test that needs another partition count than the session's broker)."""
    port, controller_port = free_ports(2)
    cfg = BrokerConfig(
        data_dir=data_dir, port=port, controller_port=controller_port,
        default_partitions=member_partitions, die_with_parent=True,
    )
    start(cfg, fetch_jars(), timeout=timeout)
    try:
        create_topics(cfg.bootstrap, member_partitions=member_partitions)
        yield cfg.bootstrap
    finally:
        stop(cfg)
