"""Jobs and members as the index sees them: small frozen dataclasses of plain strings.

`index/` knows nothing of `streams/`; callers pass these dataclasses or plain dicts
with the same field names (extra keys such as `description` are ignored).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

# Lowest to highest; the same order as streams.schemas.Seniority, kept as plain strings.
SENIORITY_LEVELS: tuple[str, ...] = (
    "intern", "entry", "mid", "senior", "lead", "director", "executive",
)
_RANK = {level: i for i, level in enumerate(SENIORITY_LEVELS)}
# What an export that does not state a level gives (streams.schemas.Seniority.UNKNOWN):
# no level, so no seniority term and no seniority rule.
UNKNOWN_SENIORITY = "unknown"


def seniority_rank(level: str) -> int | None:
    """A level's rank, lowest 0; None for an unknown level; ValueError for anything else."""
    key = str(level).strip().lower()
    if key in (UNKNOWN_SENIORITY, ""):
        return None
    try:
        return _RANK[key]
    except KeyError:
        raise ValueError(f"unknown seniority {level!r}; expected one of {SENIORITY_LEVELS} "
                         f"or {UNKNOWN_SENIORITY!r}") from None


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    title: str
    location: str = ""  # "": unknown
    seniority: str = UNKNOWN_SENIORITY
    company_id: str = ""
    occupation: str = ""
    skills: tuple[str, ...] = ()
    promoted: bool = False


@dataclass(frozen=True)
class MemberRecord:
    member_id: str
    title: str = ""
    location: str = ""
    seniority: str = UNKNOWN_SENIORITY
    occupation: str = ""
    skills: tuple[str, ...] = ()
    about: str = ""  # free text: only embedders read it (never terms, never instructions)


def _coerce(cls: type, obj: Any) -> Any:
    if isinstance(obj, cls):
        return obj
    if not isinstance(obj, Mapping):
        # pydantic models and other dataclasses: read the same attribute names
        obj = {f.name: getattr(obj, f.name) for f in fields(cls) if hasattr(obj, f.name)}
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in obj.items() if k in names}
    if "skills" in kwargs:
        kwargs["skills"] = tuple(kwargs["skills"] or ())
    if "seniority" in kwargs:
        s = kwargs["seniority"]
        kwargs["seniority"] = str(getattr(s, "value", s)) or UNKNOWN_SENIORITY
        seniority_rank(kwargs["seniority"])  # fail early on a bad level
    for text in ("title", "location"):
        if kwargs.get(text) is None and text in kwargs:
            kwargs[text] = ""
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"cannot make a {cls.__name__} from {dict(obj)!r}: {err}") from None


def as_job(obj: Any) -> JobRecord:
    """A JobRecord from a JobRecord, a dict, or any object with the same attributes."""
    return _coerce(JobRecord, obj)


def as_member(obj: Any) -> MemberRecord:
    return _coerce(MemberRecord, obj)
