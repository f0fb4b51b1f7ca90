"""The topic registry: every fact about a topic of the map, in this one place.

A `TopicSpec` holds a topic's name, its key, the event types it carries, its
partition count, retention and compaction, and who reads it. Everything else that
needs a topic fact derives it from here rather than keeping a copy:

- `streams.schemas`: which event types each topic carries (`TOPIC_OF_TYPE`, the
  per-topic validators);
- `infra.broker`: the topic plan (partitions, topic configs, dead-letter topics) that
  `hirestream broker start`, `make run` and the tests create;
- `streams.app` and its agents: the faust topics, and which topics each agent reads;
- `serving.online.replica`: what a serving replica bootstraps from and then follows;
- `serving.evaluation.eventlog`: what `hirestream record` records, and the order of events that
  share an event time.

Partitions. Member-keyed topics are co-partitioned (same count, same murmur2
partitioner, keyed by member_id), so the worker that owns partition p of `members`
owns partition p of `member-actions`, `hires`, `score-requests` and of the
`member-state` table: one member's events and state always meet on one worker. The
count is `HIRESTREAM_MEMBER_PARTITIONS` (default 12, `streams.settings`) and every
topic of the map uses it, so there is one rule.

Why 12, from the start (over-partitioned). A partition is the unit Kafka gives to one
worker of a consumer group, so the count is the most workers that can share the
member work, and the unit of state that moves (through its changelog) when a worker
fails or joins. 12 lets a deployment grow from 1 to 12 workers without touching the
topics, and divides evenly among 1, 2, 3, 4, 6 and 12 workers. Its cost is a RocksDB
instance and a changelog partition per table partition, and a little more broker
metadata: small next to changing the count later.

Why changing it later is a migration. Kafka can add partitions to a topic
(`kafka-topics.sh --alter --partitions N`), but it never moves records: a key's
partition is murmur2(key) mod N, so with a new N most members' *new* events land on
a partition whose state (RocksDB and the `member-state` changelog) does not hold
them, while their history stays on the old one; co-partitioning holds only if every
member-keyed topic and the changelog change together; and each member's state keeps
its last applied offset per source topic-partition (redelivery detection), which
names partitions of the old layout. `infra.broker.create_topics` therefore refuses a
topic whose count differs from the plan instead of "fixing" it, and changing the count
is a migration an operator runs with the producers and workers stopped (copy every
topic and the `member-state` changelog into topics made with the new count, re-keyed,
with each member state's `applied_offsets` cleared; then start the workers under a new
app id): docs/ARCHITECTURE.md, "Changing the partition count". Nothing in this
repository automates that copy yet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Reader(str, Enum):
    """Who reads a topic (within hirestream)."""

    MEMBER_AGENT = "member-state agent"  # streams/agents/members.py
    JOB_AGENT = "job-catalog agent"  # streams/agents/jobs.py
    COMPANY_AGENT = "companies agent"  # streams/agents/companies.py
    SCORING_AGENT = "scoring agent"  # serving/online/scoring_agent.py
    # The serving replica (serving/online/replica.py): a compacted topic is state it reads to
    # its end first; the others are events it follows after.
    REPLICA = "serving replica"
    RECORDER = "event-log recorder"  # `hirestream record --from-kafka` (serving/evaluation/eventlog.py)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key_field: str  # payload field whose value is the message key
    event_types: tuple[str, ...]  # the envelope `type`s this topic carries
    readers: frozenset[Reader] = field(default_factory=frozenset)
    member_keyed: bool = False  # keyed by member_id: co-partitioned with the others
    # None: the deployment's `member_partitions`, which every topic of the map uses.
    partitions: int | None = None
    # How long Kafka keeps records. Compacted: each key's latest record, for ever.
    # Otherwise `retention_ms` (None: the broker's default, a week; -1: for ever).
    compacted: bool = False
    retention_ms: int | None = None

    @property
    def cleanup_policy(self) -> str:
        return "compact" if self.compacted else "delete"

    def partition_count(self, member_partitions: int) -> int:
        return self.partitions if self.partitions is not None else member_partitions

    def topic_configs(self) -> dict[str, str]:
        """The topic-level Kafka configs the topic is created (or corrected) with."""
        configs = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


R = Reader
# In the order events refer to each other: an entity comes before what refers to it
# (the event log sorts events that share an event time by this order).
COMPANIES = TopicSpec("companies", "company_id", ("company.upserted",),
                      frozenset({R.COMPANY_AGENT, R.RECORDER}))
# The replica reads jobs through the worker's compacted `job-catalog` changelog, not here.
JOBS = TopicSpec("jobs", "job_id", ("job.posted", "job.updated", "job.closed"),
                 frozenset({R.JOB_AGENT, R.RECORDER}))
# `members` and `hires` are what a serving replica bootstraps from: a profile upsert
# carries the whole profile, so compaction keeps exactly the profile; every hire
# teaches the hire graph and hires are rare, so they are kept for ever.
MEMBERS = TopicSpec("members", "member_id", ("member.upserted",),
                    frozenset({R.MEMBER_AGENT, R.REPLICA, R.RECORDER}), member_keyed=True, compacted=True)
# Four weeks: a serving replica learns links from the applies in it (serving.online.engine:
# applies teach links for exactly this long, so that a restarted replica, which can read
# only what is kept, holds the same links as one that never stopped), and a week of
# applies gave links too few to find career moves (docs/graph-signals.md).
MEMBER_ACTIONS_RETENTION_DAYS = 28
MEMBER_ACTIONS = TopicSpec("member-actions", "member_id", ("member.action",),
                           frozenset({R.MEMBER_AGENT, R.REPLICA, R.RECORDER}), member_keyed=True,
                           retention_ms=MEMBER_ACTIONS_RETENTION_DAYS * 86_400_000)
HIRES = TopicSpec("hires", "member_id", ("hire.confirmed",),
                  frozenset({R.MEMBER_AGENT, R.REPLICA, R.RECORDER}), member_keyed=True, retention_ms=-1)
SCORE_REQUESTS = TopicSpec("score-requests", "member_id", ("score.requested",),
                           frozenset({R.SCORING_AGENT, R.RECORDER}), member_keyed=True)
# Read by whoever asked (outside hirestream).
SCORE_RESULTS = TopicSpec("score-results", "member_id", ("score.completed",), member_keyed=True)
del R

ALL_TOPICS: tuple[TopicSpec, ...] = (
    COMPANIES, JOBS, MEMBERS, MEMBER_ACTIONS, HIRES, SCORE_REQUESTS, SCORE_RESULTS,
)
BY_NAME = {t.name: t for t in ALL_TOPICS}
TOPIC_OF_TYPE: dict[str, str] = {kind: t.name for t in ALL_TOPICS for kind in t.event_types}
assert len(TOPIC_OF_TYPE) == sum(len(t.event_types) for t in ALL_TOPICS), "an event type on two topics"


def read_by(*readers: Reader) -> tuple[str, ...]:
    """The names of the topics any of `readers` reads, in registry order."""
    return tuple(t.name for t in ALL_TOPICS if t.readers & set(readers))


def dlq_name(topic: str) -> str:
    return f"{topic}.dlq"


# faust names a table's changelog topic `<app_id>-<table>-changelog`. The tables
# (streams/app.py) whose changelogs something outside the worker reads:
MEMBER_STATE_TABLE = "member-state"
JOB_CATALOG_TABLE = "job-catalog"
COMPANIES_TABLE = "companies"


def changelog_name(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"
