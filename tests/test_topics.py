"""The topic registry (streams.topics) is the one source of topic facts: the schemas'
topic maps, the broker's topic plan, the agents', the replica's and the recorder's
topic lists are all derived from it."""
from __future__ import annotations

import pytest

from infra import broker
from serving.evaluation import eventlog
from serving.online import replica
from serving.online.engine import EngineConfig
from streams import schemas, topics
from streams.schemas import CLASS_OF_TYPE, InvalidEvent, JobUpdated, parse, serialize, topic_of
from tests import factories as f

ONE_OF_EACH = [f.member_upserted("e1"), f.company("e2"), f.job_posted("e3"), JobUpdated(event_id="e4", event_time=f.at(1), payload=f.job()),
               f.job_closed("e5", "j1"), f.action("e6", "apply"), f.hire("e7")]


def test_every_event_type_has_one_topic_and_one_schema():
    listed = [kind for spec in topics.ALL_TOPICS for kind in spec.event_types]
    assert sorted(listed) == sorted(set(listed)) == sorted(CLASS_OF_TYPE)
    assert schemas.TOPIC_OF_TYPE == {kind: spec.name for spec in topics.ALL_TOPICS for kind in spec.event_types}


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda e: e.type)
def test_an_event_parses_on_its_registry_topic_and_nowhere_else(event):
    home = topics.BY_NAME[topic_of(event)]
    assert event.type in home.event_types
    assert parse(home.name, serialize(event)) == event
    for other in topics.ALL_TOPICS:
        if other is not home:
            with pytest.raises(InvalidEvent):
                parse(other.name, serialize(event))


def test_the_broker_plans_every_registry_topic_with_its_count_and_configs():
    plan = broker.topic_plan(member_partitions=12)
    assert plan == {name: 12 for spec in topics.ALL_TOPICS for name in (spec.name, topics.dlq_name(spec.name))}
    assert broker.config_plan() == {spec.name: spec.topic_configs() for spec in topics.ALL_TOPICS}
    assert broker.config_plan()["members"] == {"cleanup.policy": "compact"}
    assert broker.config_plan()["hires"] == {"cleanup.policy": "delete", "retention.ms": "-1"}
    # what a restarted replica reads applies from: the links' apply window (serving.online.engine)
    assert broker.config_plan()["member-actions"] == {"cleanup.policy": "delete", "retention.ms": str(28 * 86_400_000)}
    assert EngineConfig().link_apply_window_days == 28


def test_readers_lists_come_from_the_registry():
    replica_topics = {s.name for s in topics.ALL_TOPICS if topics.Reader.REPLICA in s.readers}
    assert set(replica.STATE_TOPICS) == {t for t in replica_topics if topics.BY_NAME[t].compacted} == {"members"}
    assert set(replica.EVENT_TOPICS) == replica_topics - {"members"} == {"member-actions", "hires"}
    assert set(eventlog.RECORDED_TOPICS) == {s.name for s in topics.ALL_TOPICS} - {"score-results"}
    assert replica.catalog_changelog("hs") == "hs-job-catalog-changelog"  # faust's changelog name
    # Entities before what refers to them, when events share an event time.
    assert eventlog.TOPIC_RANK["companies"] < eventlog.TOPIC_RANK["jobs"] < eventlog.TOPIC_RANK["member-actions"]


def test_member_keyed_topics_are_keyed_by_member_id():
    keyed = {s.name for s in topics.ALL_TOPICS if s.member_keyed}
    assert keyed == {"members", "member-actions", "hires", "score-requests", "score-results"}
    assert {topics.BY_NAME[t].key_field for t in keyed} == {"member_id"}
