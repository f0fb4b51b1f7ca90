"""Configuration in one typed place, read once from the environment and passed down.

Every knob a test or a deployment needs to turn (broker address, session timeouts,
history length) lives here, so nobody edits code to change a setting. Each field's
description is its documentation: `hirestream settings doc` writes them all into
docs/SETTINGS.md, and a test fails when that file is stale.

Values come from the environment, then from a `.env` file in the working directory
(the environment wins over the file). `HIRESTREAM_ENV_FILE` names another file, or
none when empty; the test suite sets it empty so a developer's `.env` cannot leak in.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_home(root: Path = REPO_ROOT) -> Path:
    """Where the default data, artifacts and cache folders go: the checkout when running
    from one, else the working directory (an installed wheel's `root` is the folder
    above site-packages, which is neither the user's nor, often, writable)."""
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


HOME = default_home()
ENV_FILE_ENV = "HIRESTREAM_ENV_FILE"  # which .env file to read; "" reads none
DEFAULT_ENV_FILE = ".env"


def env_file() -> Path | None:
    """The dotenv file settings read (relative to the working directory), or None."""
    name = os.environ.get(ENV_FILE_ENV, DEFAULT_ENV_FILE)
    return Path(name) if name.strip() else None


class HirestreamSettings(BaseSettings):
    """A settings class that also reads the `.env` file `env_file()` names, at construction
    (not import), so a process that changes HIRESTREAM_ENV_FILE first gets what it asked for."""

    def __init__(self, **values: Any) -> None:
        values.setdefault("_env_file", env_file())
        super().__init__(**values)


class Settings(HirestreamSettings):
    """The stream workers, the broker this project starts, and every command's clients."""

    # An invalid setting's error never echoes the input: it holds the password and the token.
    model_config = SettingsConfigDict(env_prefix="HIRESTREAM_", extra="ignore", hide_input_in_errors=True)

    # Two settings, two names: a cluster to use, or where the broker we start listens.
    kafka_bootstrap: str | None = Field(
        None, validation_alias="KAFKA_BOOTSTRAP",
        description="An existing Kafka cluster to use, `host:port[,host:port...]`: when set, "
                    "nothing starts a broker and every command and worker connects there.")
    broker_listen: str = Field(
        "127.0.0.1:19092",
        description="`host:port` the broker this project starts listens on (its KRaft "
                    "controller takes the next port up); clients connect here unless "
                    "KAFKA_BOOTSTRAP is set.")
    retired_kafka_bootstrap: str | None = Field(
        None, validation_alias="HIRESTREAM_KAFKA_BOOTSTRAP", exclude=True,
        description="Retired (it set one field with two meanings): an error when set. Use "
                    "KAFKA_BOOTSTRAP for a cluster to use, HIRESTREAM_BROKER_LISTEN to move "
                    "the broker this project starts.")

    # How clients authenticate to the cluster KAFKA_BOOTSTRAP names (a managed one, say);
    # streams/kafka_security.py turns them into each client's options.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every client (workers, commands, the scoring service) talks to the "
                    "cluster: `SASL_SSL` for a managed cluster with users, `SSL` for TLS alone. "
                    "Anything but PLAINTEXT needs KAFKA_BOOTSTRAP: the broker this project "
                    "starts by itself listens in plain text.")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="The SASL mechanism the cluster's users authenticate with "
                             "(SASL_* protocols only).")
    kafka_username: str | None = Field(None, description="The SASL user (SASL_* protocols: required).")
    kafka_password: SecretStr | None = Field(
        None, description="The SASL user's password (SASL_* protocols: required). Never printed "
                          "or logged; kept out of every repr.")
    kafka_ca_file: Path | None = Field(
        None, description="PEM file of the CA(s) the cluster's certificate must chain to "
                          "(SSL, SASL_SSL); unset: the system's trusted CAs.")
    kafka_cert_file: Path | None = Field(
        None, description="PEM client certificate for a cluster that asks for one (mutual TLS; "
                          "SSL, SASL_SSL).")
    kafka_key_file: Path | None = Field(
        None, description="PEM private key (unencrypted) of HIRESTREAM_KAFKA_CERT_FILE; unset: "
                          "the key is in that file.")

    member_partitions: int = Field(
        12, ge=1,
        description="Partitions of every member-keyed (co-partitioned) topic: the most workers "
                    "that can share the member work. Over-partitioned from the start because "
                    "changing it later is a migration (streams/topics.py).")
    replication_factor: int = Field(
        1, ge=1, description="Replicas of each topic and changelog the project creates (3 on a "
                             "three-broker cluster).")
    standby_replicas: int = Field(
        1, ge=0,
        description="Standby copies each worker keeps of the other workers' table partitions "
                    "(restored from the changelogs), so a failover resumes warm and a read can "
                    "be answered from one.")

    app_id: str = Field("hirestream", description="Faust app id: workers with the same id form "
                                                  "one consumer group and share the work.")
    data_dir: Path = Field(HOME / ".hirestream", description="Where a worker keeps its "
                           "RocksDB tables and the started broker its files (`kafka/`).")
    artifacts_dir: Path = Field(HOME / "artifacts", description="Trained models (and the base model's "
                                "float copy), indexes and evaluation outputs. These three folders "
                                "default to the checkout, or to the working directory where "
                                "hirestream runs from an installed package.")
    cache_dir: Path = Field(HOME / ".cache", description="Downloads kept between runs (the "
                            "broker's jars, datasets, model weights).")

    broker_session_timeout: float = Field(
        10.0, gt=0, description="Seconds a consumer may go silent before its group rebalances; "
                                "group joins wait on it, so tests and `make run` keep it short.")
    broker_heartbeat_interval: float = Field(
        3.0, gt=0, description="Seconds between consumer heartbeats (under a third of the "
                               "session timeout).")
    commit_interval: float = Field(1.0, gt=0, description="Seconds between a worker's offset commits.")
    event_loop: str = Field("uvloop", description="The worker's asyncio loop: `uvloop` or `aio`.")
    batch_max_events: int = Field(500, ge=1, description="Member events folded per batch (one "
                                                        "table write per member).")
    batch_within: float = Field(0.05, ge=0, description="Seconds a batch waits to fill: bounds "
                                                        "the latency batching adds.")
    producer_linger: float = Field(0.02, ge=0, description="Seconds a changelog or dead-letter write may "
                                                           "wait to share a request (a score result never "
                                                           "waits: streams/send_now.py).")
    web_port: int = Field(6066, ge=0, le=65535, description="Port of the worker's read API.")
    web_host: str = Field(
        "127.0.0.1", description="Host other workers reach this one's read API by (faust's "
                                 "canonical URL `http://<web_host>:<web_port>`): a member read "
                                 "is forwarded to its owner there.")
    forward_timeout: float = Field(5.0, gt=0, description="Seconds a forwarded member read may take.")
    web_bind: str = Field(
        "127.0.0.1", description="Address the read API listens on: loopback unless a deployment "
                                 "says otherwise; any other address needs HIRESTREAM_TOKEN.")
    token: SecretStr | None = Field(
        None, description="Bearer token every endpoint but `/health/` then requires "
                          "(`Authorization: Bearer <token>`); empty means none. Never logged.")

    # Bounds on what a message may be (streams.bounds): beyond them it is dead-lettered
    # with the reason, so one hostile producer cannot pin state or exhaust memory.
    max_event_bytes: int = Field(
        128 * 1024, ge=1,
        description="Largest message in bytes, checked before parsing; beyond it the message is "
                    "dead-lettered. 128 KiB holds the ~26,000 characters the fields' bounds "
                    "allow as UTF-8.")
    event_time_min: datetime = Field(
        datetime(2000, 1, 1, tzinfo=timezone.utc),
        description="Earliest event time accepted; older events are dead-lettered.")
    event_time_max_ahead_s: float = Field(
        86_400.0, ge=0, description="Seconds past the clock an event time may be; later ones are "
                                    "dead-lettered.")

    history_max_items: int = Field(30, ge=1, description="Interactions kept per member, newest first.")
    history_max_chars: int = Field(4000, ge=1, description="Bound on a member's rendered history "
                                                           "text, in characters.")
    seen_event_ids: int = Field(64, ge=0, description="Per-member window of applied event ids: a "
                                                      "redelivered event in it changes nothing.")
    torch_threads: int = Field(0, ge=0, description="CPU threads for model training and scoring; "
                                                    "0: torch's default.")
    run_ranker_minutes: float = Field(4.0, ge=0, description="Minutes `make run` trains a ranker "
                                                             "when artifacts/ has none.")
    run_rankers: int = Field(2, ge=0, description="At most this many checkpoints from artifacts/ "
                                                   "(the newest) in `make run`'s replay; 0: every one.")
    run_held_out_days: int = Field(2, ge=1, description="`make run` evaluates every model on the "
                                                        "log's last this-many days only.")

    @property
    def bootstrap(self) -> str:
        """Where clients connect: the cluster named by KAFKA_BOOTSTRAP, else our own broker."""
        return self.kafka_bootstrap or self.broker_listen

    @model_validator(mode="after")
    def _one_name_per_setting(self) -> "Settings":
        if self.retired_kafka_bootstrap is not None:
            raise ValueError(
                "HIRESTREAM_KAFKA_BOOTSTRAP is retired: set KAFKA_BOOTSTRAP to use an existing "
                "cluster, or HIRESTREAM_BROKER_LISTEN to move the broker this project starts")
        return self

    @field_validator("kafka_username", "kafka_password", "kafka_ca_file", "kafka_cert_file",
                     "kafka_key_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> "Settings":
        protocol = self.kafka_security_protocol
        if protocol != "PLAINTEXT" and not self.kafka_bootstrap:
            raise ValueError(
                f"HIRESTREAM_KAFKA_SECURITY_PROTOCOL={protocol} describes a cluster to use: set "
                "KAFKA_BOOTSTRAP to it (the broker this project starts listens in PLAINTEXT)")
        sasl = protocol.startswith("SASL_")
        credentials = {"HIRESTREAM_KAFKA_USERNAME": self.kafka_username,
                       "HIRESTREAM_KAFKA_PASSWORD": self.kafka_password}
        if sasl and not all(credentials.values()):
            missing = " and ".join(name for name, value in credentials.items() if not value)
            raise ValueError(f"HIRESTREAM_KAFKA_SECURITY_PROTOCOL={protocol} needs {missing}")
        if not sasl and any(credentials.values()):
            raise ValueError("HIRESTREAM_KAFKA_USERNAME/PASSWORD are set but the protocol is "
                             f"{protocol}: set HIRESTREAM_KAFKA_SECURITY_PROTOCOL=SASL_SSL "
                             "(or SASL_PLAINTEXT) to use them")
        files = {"HIRESTREAM_KAFKA_CA_FILE": self.kafka_ca_file,
                 "HIRESTREAM_KAFKA_CERT_FILE": self.kafka_cert_file,
                 "HIRESTREAM_KAFKA_KEY_FILE": self.kafka_key_file}
        given = {name: path for name, path in files.items() if path is not None}
        if given and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(f"{', '.join(given)} set but HIRESTREAM_KAFKA_SECURITY_PROTOCOL="
                             f"{protocol} uses no TLS: set it to SSL or SASL_SSL")
        for name, path in given.items():
            if not path.is_file():
                raise ValueError(f"{name}={path}: no such file")
        if self.kafka_key_file is not None and self.kafka_cert_file is None:
            raise ValueError("HIRESTREAM_KAFKA_KEY_FILE needs HIRESTREAM_KAFKA_CERT_FILE, the "
                             "certificate it belongs to")
        return self

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
