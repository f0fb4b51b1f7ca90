"""Topic names and shapes from the architecture map, in one place."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key_field: str  # payload field whose value is the message key
    member_keyed: bool  # co-partitioned with the other member-keyed topics
    # How long Kafka keeps the topic: "delete" keeps `retention_ms` (None: the broker's
    # default, a week); "compact" keeps each key's latest record for ever.
    cleanup_policy: str = "delete"
    retention_ms: int | None = None


# `members` and `hires` are what a serving replica bootstraps from (serving/replica.py):
# a profile upsert carries the whole profile, so compaction keeps exactly the profile;
# every hire teaches the hire graph and hires are rare, so they are kept for ever.
MEMBERS = TopicSpec("members", "member_id", True, cleanup_policy="compact")
COMPANIES = TopicSpec("companies", "company_id", False)
JOBS = TopicSpec("jobs", "job_id", False)
MEMBER_ACTIONS = TopicSpec("member-actions", "member_id", True)
HIRES = TopicSpec("hires", "member_id", True, retention_ms=-1)
SCORE_REQUESTS = TopicSpec("score-requests", "member_id", True)
SCORE_RESULTS = TopicSpec("score-results", "member_id", True)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    MEMBERS, COMPANIES, JOBS, MEMBER_ACTIONS, HIRES, SCORE_REQUESTS, SCORE_RESULTS,
)
BY_NAME = {t.name: t for t in ALL_TOPICS}


def dlq_name(topic: str) -> str:
    return f"{topic}.dlq"


def partitions_for(spec: TopicSpec, member_partitions: int) -> int:
    # Jobs and companies are small and replicated to every serving worker, but
    # partitioning them the same way keeps one rule for every topic.
    return member_partitions


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    """The topic-level Kafka configs a topic is created (or corrected) with."""
    configs = {"cleanup.policy": spec.cleanup_policy}
    if spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    return configs
