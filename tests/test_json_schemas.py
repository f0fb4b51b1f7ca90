"""`hirestream schema export`: the JSON Schema other teams' producers validate against
accepts every event the simulator produces and refuses what a worker dead-letters.

Checked with tests/json_schema_check.py against the exported documents themselves
(the environment has no `jsonschema` package; see that module)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from infra.cli import main
from streams.schemas import CLASS_OF_TYPE, TOPIC_OF_TYPE, json_schemas, serialize
from streams.simulator import Marketplace, MarketplaceConfig
from tests import test_hostile_input as hostile
from tests import test_schemas
from tests.json_schema_check import errors

SCHEMAS = json_schemas()


def _errors(raw: bytes, kind: str) -> list[str]:
    return errors(json.loads(raw), SCHEMAS[kind])


def test_export_writes_one_schema_per_event_type(tmp_path):
    result = CliRunner().invoke(main, ["schema", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = {p.name: json.loads(p.read_text()) for p in tmp_path.iterdir()}
    assert written == {f"{kind}.schema.json": doc for kind, doc in SCHEMAS.items()}
    assert set(SCHEMAS) == set(CLASS_OF_TYPE)


def test_every_simulated_event_is_valid():
    sim = Marketplace(MarketplaceConfig(seed=5, n_members=60, n_companies=6, n_jobs=80, days=3))
    seen: dict[str, int] = {}
    for ev in sim.events():
        assert _errors(serialize(ev), ev.type) == [], ev
        seen[ev.type] = seen.get(ev.type, 0) + 1
    assert {"member.upserted", "company.upserted", "job.posted", "member.action"} <= set(seen)


def test_a_view_with_dwell_and_an_unknown_field_are_valid():
    raw = json.loads(serialize(hostile.f.action("e1", "view", job_id="j1")))
    raw["payload"]["dwell_s"] = 12.5
    raw["trace_id"] = "t1"
    assert errors(raw, SCHEMAS["member.action"]) == []


def _schema_rejections():
    """The rejections tests/test_schemas.py requires of the parser (its parametrize
    list, read from the test itself so the two cannot drift), all member actions."""
    mark = next(m for m in test_schemas.test_rejections_say_what_was_wrong.pytestmark if m.name == "parametrize")
    return [raw for raw, _ in mark.args[1]]


# The dead-letter cases of tests/test_hostile_input.py that are not JSON at all (a
# producer's encoder never writes them) or that only the worker can judge (event time
# against its clock, the byte bound).
NOT_SCHEMA_QUESTIONS = {"not JSON", "truncated", "deeply nested", "invalid UTF-8", "raw NUL byte",
                        "over the size bound", "year 9999", "before 2000"}


@pytest.mark.parametrize("case", hostile.TOPICS, ids=lambda c: c.name)
def test_the_dead_letter_cases_are_refused(case):
    kind = case.make("x").type
    refused = []
    for name, _marker, raw, _why in hostile.hostile_messages(case, lambda s: f"{s}-x"):
        if name in NOT_SCHEMA_QUESTIONS:
            continue
        assert _errors(raw, kind), f"{name}: {raw[:200]!r} passed the {kind} schema"
        refused.append(name)
    assert len(refused) == 5


@pytest.mark.parametrize("raw", [r for r in _schema_rejections() if r.startswith(b"{")])
def test_the_parser_rejections_are_refused(raw):
    assert _errors(raw, "member.action"), raw


def test_a_rejection_names_the_field():
    raw = json.loads(serialize(hostile.f.action("e1", "dismiss", job_id="j1", reason="company")))
    del raw["payload"]["reason"]
    assert any("reason" in e for e in errors(raw, SCHEMAS["member.action"]))
    assert TOPIC_OF_TYPE["member.action"] == "member-actions"
