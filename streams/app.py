"""The faust app, its topics and tables, declared once at module level (faust style).

State lives in RocksDB (through rocksdict) with a changelog topic per table, so a
restarted or rebalanced worker restores exactly what it had:

- `member-state`   member_id -> profile, recent interactions, counters, the last
                   applied offset per source partition and event-id window
                   (idempotency), and the verbalized history text (co-partitioned with the
                   member-keyed topics, so a worker owns its members' state).
- `job-catalog`    job_id -> job and whether it is open; a GlobalTable, because every
                   worker needs every job to describe interactions.
- `companies`      company_id -> company; global for the same reason.

Settings come from `streams.settings` (environment), never from code edits.
"""
from __future__ import annotations

import faust

from streams import faust_fixes
from streams.kafka_security import KafkaSecurity
from streams.settings import get_settings
from streams.tables import HandedOffGlobalTable, HandedOffTable
from streams.topics import (ALL_TOPICS, COMPANIES_TABLE, JOB_CATALOG_TABLE, MEMBER_STATE_TABLE,
                            dlq_name)

settings = get_settings()
faust_fixes.apply()  # before the app exists: see streams/faust_fixes.py


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in bootstrap.split(",") if hostport.strip()]


app = faust.App(
    settings.app_id,
    broker=_broker_urls(settings.bootstrap),
    # SASL and TLS, as every other client gets them (streams.kafka_security); None: plain text.
    broker_credentials=KafkaSecurity.from_settings(settings).faust_credentials(),
    store="rocksdb://",
    datadir=str(settings.data_dir / "worker"),
    topic_partitions=settings.member_partitions,
    topic_replication_factor=settings.replication_factor,
    broker_session_timeout=settings.broker_session_timeout,
    broker_heartbeat_interval=settings.broker_heartbeat_interval,
    broker_commit_interval=settings.commit_interval,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    # Batch changelog and DLQ writes: with faust's default linger of 0 every table
    # update is its own produce request, which bounded ingest at ~100 events/s here.
    producer_linger=settings.producer_linger,
    table_standby_replicas=settings.standby_replicas,
    web_host=settings.web_host,  # the canonical URL other workers forward reads to
    web_bind=settings.web_bind,  # loopback unless told otherwise (streams.web_auth)
    web_port=settings.web_port,
    # faust's own views are off: /table/ dumps raw table values (member profiles),
    # /router/ the cluster's layout, / and /graph/ internals; our read API is streams.web.
    web_tables_enabled=False,
    web_router_enabled=False,
    web_stats_enabled=False,
    web_graph_enabled=False,
    autodiscover=False,
    Table=HandedOffTable,  # changelog records handed off before acks (streams.tables)
    GlobalTable=HandedOffGlobalTable,
)

# Raw bytes in: validation is ours (streams.schemas), so a malformed message can be
# sent to its dead-letter topic exactly as it arrived instead of crashing a codec.
source_topics = {
    spec.name: app.topic(
        spec.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partition_count(settings.member_partitions),
    )
    for spec in ALL_TOPICS
}
dead_letter_topics = {
    spec.name: app.topic(
        dlq_name(spec.name), key_serializer="raw", value_serializer="raw",
        partitions=spec.partition_count(settings.member_partitions),
    )
    for spec in ALL_TOPICS
}

# Table partition p holds the keys of source partition p (streams.tables.acting_as).
#
# Copies of partitions another worker writes apply each changelog record as it
# arrives (a buffer of 1): faust buffers them up to 1,000 records per table and
# applies the buffer only when it is full or at a rebalance, so with several workers
# a standby copy (`member-state`, read when a member's owner is unreachable) and the
# other workers' share of a global table (a job posted on another worker's partition,
# which this worker's member histories describe) lagged by up to 1,000 records. faust
# files the live records of a global table's other partitions as "active" recovery,
# hence `recovery_buffer_size` there; `member-state` restores its own partitions in
# bulk, before the worker serves them, and keeps faust's buffer for that. (With a
# buffer of 1 faust would also keep reading back a global table's partitions this
# worker writes itself; streams.faust_fixes (7) pauses those once they are restored.)
member_state = app.Table(
    MEMBER_STATE_TABLE, default=None, partitions=settings.member_partitions,
    key_type=str, standby_buffer_size=1,
)
job_catalog = app.GlobalTable(
    JOB_CATALOG_TABLE, default=None, partitions=settings.member_partitions,
    key_type=str, recovery_buffer_size=1,
)
companies = app.GlobalTable(
    COMPANIES_TABLE, default=None, partitions=settings.member_partitions,
    key_type=str, recovery_buffer_size=1,
)


def register_agents() -> None:
    """Import the agent modules so their agents are declared (no autodiscover)."""
    from streams.agents import companies, jobs, members  # noqa: F401
    from streams import web as _w  # noqa: F401
