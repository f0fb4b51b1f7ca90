"""Event schemas: every message on every topic is one JSON envelope.

    {"schema": "hirestream.v2", "event_id": "...", "event_time": "2026-11-28T12:00:00Z",
     "type": "member.upserted", "payload": {...}}

This module is the one place that validates, serializes and parses events.
`parse(topic, raw)` either returns a typed event or raises `InvalidEvent` carrying the
reason and the original bytes, which is what the dead-letter path needs.

Compatibility policy (what lets a producer be upgraded before the workers, and real
exports with gaps in):

- Unknown fields are ignored and kept. An envelope or payload with a field this
  reader does not know is valid; the field is carried along (`model_extra`) and
  written back out unchanged, so a worker one version behind neither dead-letters a
  newer producer's events nor strips what it does not understand. Extra fields are
  bounded like everything else: at most `MAX_EXTRA_FIELDS` per object, and the whole
  message by `max_event_bytes` before it is parsed.
- The schema version names a major version. A reader accepts its own and every
  earlier one (`READ_VERSIONS`): every v1 event is a valid v2 event. Writers write
  `SCHEMA_VERSION`. A later major version is refused (dead-lettered) until the
  reader is upgraded: readers go first.
- A field a real export may lack is optional with an explicit unknown: "" for texts,
  `Seniority.UNKNOWN`, None for numbers. Consumers (verbalizer, index) leave an
  unknown out rather than inventing a value.
- v2 over v1: MemberProfile.title, location, seniority, years_experience and
  Job.location, seniority became optional; `Seniority.UNKNOWN`; MemberAction.dwell_s
  (how long a view lasted); unknown fields kept instead of refused.
"""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from streams.topics import ALL_TOPICS, BY_NAME, TOPIC_OF_TYPE, TopicSpec

SCHEMA_VERSION = "hirestream.v2"
READ_VERSIONS = ("hirestream.v1", "hirestream.v2")  # every earlier major version reads as this one
MAX_EXTRA_FIELDS = 16  # unknown fields kept per object: forward compatibility, not a free-form store

# Every id and text field has a bound, so one message cannot grow state or a prompt
# without limit. Ids refuse control characters (NUL included): they become Kafka
# keys, RocksDB keys and URL path segments. Texts become the ranker's prompts and
# keep only tab and line breaks (which the verbalizer neutralizes itself).
ID_MAX = 128
SHORT_TEXT_MAX = 200
LONG_TEXT_MAX = 5000
NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"
NO_CONTROLS_BUT_LINES = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX, strip_whitespace=True,
                                      pattern=NO_CONTROLS)]
ShortText = Annotated[str, StringConstraints(max_length=SHORT_TEXT_MAX, pattern=NO_CONTROLS_BUT_LINES)]
LongText = Annotated[str, StringConstraints(max_length=LONG_TEXT_MAX, pattern=NO_CONTROLS_BUT_LINES)]


class Seniority(str, Enum):
    INTERN = "intern"
    ENTRY = "entry"
    MID = "mid"
    SENIOR = "senior"
    LEAD = "lead"
    DIRECTOR = "director"
    EXECUTIVE = "executive"
    UNKNOWN = "unknown"  # the export did not say; has no rank

    @property
    def rank(self) -> int:
        if self is Seniority.UNKNOWN:
            raise ValueError("an unknown seniority has no rank")
        return SENIORITY_ORDER.index(self)


# The known levels, lowest to highest (UNKNOWN is not a level).
SENIORITY_ORDER: tuple[Seniority, ...] = tuple(s for s in Seniority if s is not Seniority.UNKNOWN)


class DismissReason(str, Enum):
    """Feedback a member gives when dismissing a job, grouped into categories."""

    TOO_SENIOR = "too_senior"
    TOO_JUNIOR = "too_junior"
    WRONG_LOCATION = "wrong_location"
    COMPANY = "company"
    NOT_MY_FIELD = "not_my_field"
    ALREADY_SEEN = "already_seen"
    OTHER = "other"


class ActionType(str, Enum):
    VIEW = "view"
    CLICK = "click"
    SAVE = "save"
    APPLY = "apply"
    DISMISS = "dismiss"
    SEARCH = "search"


class Surface(str, Enum):
    RECOMMENDATIONS = "recommendations"  # organic "jobs you may be interested in"
    SEARCH = "search"
    PROMOTED = "promoted"


def _bounded_extras(model: BaseModel) -> None:
    extra = model.model_extra or {}
    if len(extra) > MAX_EXTRA_FIELDS:
        raise ValueError(f"{len(extra)} unknown fields (at most {MAX_EXTRA_FIELDS} are kept): "
                         f"{', '.join(sorted(extra)[:5])}, ...")


class Payload(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # unknown fields kept: the policy above

    @model_validator(mode="after")
    def _extras_bounded(self):
        _bounded_extras(self)
        return self


# ---- payloads, one per event type -------------------------------------------------


class MemberProfile(Payload):
    member_id: Id
    title: ShortText = ""  # "": unknown
    occupation: ShortText = ""
    skills: list[ShortText] = Field(default_factory=list, max_length=100)
    location: ShortText = ""  # "": unknown
    seniority: Seniority = Seniority.UNKNOWN
    years_experience: float | None = Field(default=None, ge=0, le=70)  # None: unknown
    about: LongText = ""  # member-written free text: never trusted as instructions


class Company(Payload):
    company_id: Id
    name: ShortText
    industry: ShortText = ""
    location: ShortText = ""
    size: int = Field(default=0, ge=0, le=10_000_000)  # employees; the largest employer has ~2.1M


class Job(Payload):
    job_id: Id
    company_id: Id
    company_name: ShortText
    title: ShortText
    occupation: ShortText = ""
    skills: list[ShortText] = Field(default_factory=list, max_length=100)
    location: ShortText = ""  # "": unknown
    seniority: Seniority = Seniority.UNKNOWN
    promoted: bool = False
    description: LongText = ""


class JobClosed(Payload):
    job_id: Id


def _null(field: str) -> dict:
    return {"properties": {field: {"type": "null"}}}


# The rules `_fields_match_action` checks, in JSON Schema's words, so that a producer
# validating against the exported schema (`json_schemas`) is refused what a worker would
# dead-letter.
_ACTION_RULES = [
    {"if": {"properties": {"action": {"const": "search"}}},
     "then": {"required": ["query"], "properties": {"query": {"type": "string", "minLength": 1}}},
     "else": {"required": ["job_id"], "properties": {"job_id": {"type": "string"}}}},
    {"if": {"properties": {"action": {"const": "dismiss"}}},
     "then": {"required": ["reason"], "properties": {"reason": {"not": {"type": "null"}}}},
     "else": _null("reason")},
    {"if": {"properties": {"action": {"const": "view"}}}, "then": {}, "else": _null("dwell_s")},
]


class MemberAction(Payload):
    model_config = ConfigDict(json_schema_extra={"allOf": _ACTION_RULES})

    member_id: Id
    action: ActionType
    job_id: Id | None = None
    reason: DismissReason | None = None  # dismiss only
    query: ShortText | None = None  # search only
    surface: Surface = Surface.RECOMMENDATIONS
    # view only: seconds from the view's start to its end; None when the export has no
    # end (an open-ended view) or the producer does not measure it
    dwell_s: float | None = Field(default=None, ge=0, le=30 * 86400, allow_inf_nan=False)

    @model_validator(mode="after")
    def _fields_match_action(self) -> "MemberAction":
        if self.action is ActionType.SEARCH:
            if not self.query:
                raise ValueError("a search action needs a non-empty query")
        elif self.job_id is None:
            raise ValueError(f"a {self.action.value} action needs a job_id")
        if self.action is ActionType.DISMISS and self.reason is None:
            raise ValueError("a dismiss action needs a feedback reason")
        if self.action is not ActionType.DISMISS and self.reason is not None:
            raise ValueError(f"only dismiss actions carry a reason, not {self.action.value}")
        if self.action is not ActionType.VIEW and self.dwell_s is not None:
            raise ValueError(f"only view actions carry a dwell time, not {self.action.value}")
        return self


class Hire(Payload):
    member_id: Id
    job_id: Id
    company_id: Id


class ScoreRequest(Payload):
    request_id: Id
    member_id: Id
    surface: Surface = Surface.RECOMMENDATIONS
    query: ShortText | None = None
    task: ShortText = "apply"
    k: int = Field(default=10, ge=1, le=500)
    deadline_ms: int = Field(default=1000, ge=1, le=60_000)


MAX_REASONS = 8  # per scored item
MAX_ITEMS = 500  # ScoreRequest.k's bound
MAX_TIMINGS = 16


class ScoredItem(Payload):
    job_id: Id
    score: float = Field(allow_inf_nan=False)  # JSON has no NaN: it would not parse back
    reasons: list[ShortText] = Field(default_factory=list, max_length=MAX_REASONS)


class ScoreStatus(str, Enum):
    """What a result is; for every status but `ok`, `error` says why."""

    OK = "ok"
    # Ranked, but not all of it: the deadline came first (the index's own order of
    # the candidates), or the service was loaded and ranked fewer candidates.
    PARTIAL = "partial"
    EXPIRED = "expired"  # past its deadline when it arrived (or before it could be scored)
    SHED = "shed"  # refused unscored: the scoring queue was full (serving.online.scoring's policy)
    ERROR = "error"


class ScoreResult(Payload):
    """Results are built by `serving.online.results`, which fits every field to these bounds."""

    request_id: Id
    member_id: Id
    items: list[ScoredItem] = Field(max_length=MAX_ITEMS)
    model_id: ShortText
    timings_ms: dict[ShortText, float] = Field(default_factory=dict, max_length=MAX_TIMINGS)
    error: LongText | None = None
    status: ScoreStatus = ScoreStatus.OK


# ---- envelopes ---------------------------------------------------------------------


class Envelope(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    schema_: Literal["hirestream.v1", "hirestream.v2"] = Field(SCHEMA_VERSION, alias="schema")
    event_id: Id
    event_time: AwareDatetime

    @model_validator(mode="after")
    def _extras_bounded(self):
        _bounded_extras(self)
        return self

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class MemberUpserted(Envelope):
    type: Literal["member.upserted"] = "member.upserted"
    payload: MemberProfile


class CompanyUpserted(Envelope):
    type: Literal["company.upserted"] = "company.upserted"
    payload: Company


class JobPosted(Envelope):
    type: Literal["job.posted"] = "job.posted"
    payload: Job


class JobUpdated(Envelope):
    type: Literal["job.updated"] = "job.updated"
    payload: Job


class JobClosedEvent(Envelope):
    type: Literal["job.closed"] = "job.closed"
    payload: JobClosed


class MemberActed(Envelope):
    type: Literal["member.action"] = "member.action"
    payload: MemberAction


class HireConfirmed(Envelope):
    type: Literal["hire.confirmed"] = "hire.confirmed"
    payload: Hire


class ScoreRequested(Envelope):
    type: Literal["score.requested"] = "score.requested"
    payload: ScoreRequest


class ScoreCompleted(Envelope):
    type: Literal["score.completed"] = "score.completed"
    payload: ScoreResult


Event = Union[
    MemberUpserted, CompanyUpserted, JobPosted, JobUpdated, JobClosedEvent,
    MemberActed, HireConfirmed, ScoreRequested, ScoreCompleted,
]

# Every envelope class by its `type`, and what each topic may carry: the event types
# the topic registry (streams.topics) lists for it. One TypeAdapter per topic, built
# once (validation is on the ingest hot path).
CLASS_OF_TYPE: dict[str, type[Envelope]] = {cls.model_fields["type"].default: cls for cls in get_args(Event)}
if set(CLASS_OF_TYPE) != set(TOPIC_OF_TYPE):
    raise ImportError(f"event types without a topic: {sorted(set(CLASS_OF_TYPE) - set(TOPIC_OF_TYPE))}; "
                      f"topics' types without a schema: {sorted(set(TOPIC_OF_TYPE) - set(CLASS_OF_TYPE))}")


def _carried(spec: TopicSpec) -> Any:
    classes = [CLASS_OF_TYPE[kind] for kind in spec.event_types]
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[tuple(classes)], Field(discriminator="type")]


_ADAPTERS = {spec.name: TypeAdapter(_carried(spec)) for spec in ALL_TOPICS}


class InvalidEvent(ValueError):
    """A message that is not a valid event for its topic; keeps the original bytes."""

    def __init__(self, topic: str, reason: str, raw: bytes):
        super().__init__(f"invalid event on {topic!r}: {reason}")
        self.topic = topic
        self.reason = reason
        self.raw = raw


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def parse(topic: str, raw: bytes | str) -> Event:
    """Validate one message from `topic`; raise InvalidEvent with a readable reason."""
    raw_bytes = raw.encode() if isinstance(raw, str) else bytes(raw)
    adapter = _ADAPTERS.get(topic)
    if adapter is None:
        raise InvalidEvent(topic, f"unknown topic {topic!r}", raw_bytes)
    try:
        return adapter.validate_json(raw_bytes)
    except ValidationError as err:
        raise InvalidEvent(topic, _describe(err), raw_bytes) from None


def serialize(event: Envelope) -> bytes:
    return event.to_json()


def topic_of(event: Envelope) -> str:
    return TOPIC_OF_TYPE[event.type]  # type: ignore[attr-defined]


def key_of(event: Envelope) -> str:
    """The message key: member_id on member-keyed topics, else the entity's id."""
    spec = BY_NAME[topic_of(event)]
    return getattr(event.payload, spec.key_field)  # type: ignore[attr-defined]


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema (2020-12) of every event type, by type: what other teams' producers
    validate against. `type` is required on the wire (it picks the schema), and a field
    this version does not know is allowed (the compatibility policy above)."""
    out = {}
    for kind, cls in sorted(CLASS_OF_TYPE.items()):
        doc = cls.model_json_schema(by_alias=True, mode="validation")
        doc["required"] = sorted({*doc.get("required", ()), "type"})
        for obj in (doc, *doc.get("$defs", {}).values()):
            if obj.get("additionalProperties") is True:  # unknown fields kept, and bounded
                obj["maxProperties"] = len(obj.get("properties", {})) + MAX_EXTRA_FIELDS
        doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        doc["$id"] = f"{kind}.schema.json"
        doc["description"] = (f"A {kind} event ({SCHEMA_VERSION}; readers also accept {', '.join(READ_VERSIONS[:-1])}). "
                              f"Envelope on topic {TOPIC_OF_TYPE[kind]!r}, keyed by the payload's "
                              f"{BY_NAME[TOPIC_OF_TYPE[kind]].key_field}.")
        out[kind] = doc
    return out


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)
