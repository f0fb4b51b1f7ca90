"""Configuration in one typed place, read once from the environment and passed down.

Every knob a test or a deployment needs to turn (broker address, session timeouts,
history length) lives here, so nobody edits code to change a setting.
"""
from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HIRESTREAM_", extra="ignore")

    # `KAFKA_BOOTSTRAP=host:port` points everything at an existing cluster.
    kafka_bootstrap: str = Field(
        "127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP", "HIRESTREAM_KAFKA_BOOTSTRAP"),
    )
    # Partitions of every topic of the map (member-keyed topics are co-partitioned):
    # the most workers that can share the member work. Over-partitioned from the
    # start, because changing it later is a migration: see streams/topics.py.
    member_partitions: int = 12
    replication_factor: int = 1
    # Workers of one app id form one consumer group; each keeps this many standby
    # copies of the other workers' table partitions, restored from the changelogs,
    # so a failover resumes from a warm copy and a read can be answered from one.
    standby_replicas: int = 1

    app_id: str = "hirestream"
    data_dir: Path = REPO_ROOT / ".hirestream"
    artifacts_dir: Path = REPO_ROOT / "artifacts"
    cache_dir: Path = REPO_ROOT / ".cache"

    # Group joins wait on the session timeout; tests and `make run` want it short.
    broker_session_timeout: float = 10.0
    broker_heartbeat_interval: float = 3.0
    commit_interval: float = 1.0
    event_loop: str = "uvloop"  # the worker's asyncio loop: "uvloop" or "aio"
    batch_max_events: int = 500  # member events folded per batch (one write per member)
    batch_within: float = 0.05  # seconds a batch waits to fill: bounds the added latency
    producer_linger: float = 0.02  # seconds a changelog write may wait to share a request
    web_port: int = 6066
    # How other workers reach this one's read API (faust's canonical URL,
    # http://<web_host>:<web_port>): a member read is forwarded to its owner there.
    web_host: str = "127.0.0.1"
    forward_timeout: float = 5.0  # seconds a forwarded member read may take
    # The read API answers on loopback only, unless a deployment says otherwise; an
    # address other machines can reach needs HIRESTREAM_TOKEN (see `_web_is_guarded`).
    web_bind: str = "127.0.0.1"
    # With a token every endpoint but /health/ wants `Authorization: Bearer <token>`.
    token: SecretStr | None = None

    # Bounds on what a message may be (streams.bounds): beyond them it is dead-lettered
    # with the reason, so one hostile producer cannot pin state or exhaust memory.
    # Checked before parsing. The fields' bounds allow ~26,000 characters per event:
    # 128 KiB holds them as raw UTF-8 (4 bytes a character at worst).
    max_event_bytes: int = 128 * 1024
    event_time_min: datetime = datetime(2000, 1, 1, tzinfo=timezone.utc)
    event_time_max_ahead_s: float = 86_400.0  # how far past the clock an event time may be

    history_max_items: int = 30  # interactions kept per member, newest first
    history_max_chars: int = 4000  # bound on the rendered history text
    seen_event_ids: int = 64  # per-member window of applied event ids (idempotency)
    torch_threads: int = 0  # CPU threads for model training/scoring; 0 = torch's default
    run_ranker_minutes: float = 4.0  # `make run` trains a ranker this long when artifacts/ has none
    run_held_out_days: int = 2  # `make run` evaluates every model on the log's last days only

    @model_validator(mode="after")
    def _web_is_guarded(self) -> "Settings":
        if self.token is not None and not self.token.get_secret_value().strip():
            self.token = None  # HIRESTREAM_TOKEN="" is no token, not an empty password
        if self.token is None and not is_loopback(self.web_bind):
            raise ValueError(f"web_bind={self.web_bind!r} lets other machines reach the read API "
                             "(member profiles, histories, debug traces): set HIRESTREAM_TOKEN too")
        return self


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: assume reachable
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
