"""The mapping file: which export column becomes which field of which event, how times
parse, how ids are normalised, which rows are skipped and why. TOML, validated here
(a typo in a key is an error, not a silently unmapped field).

    null_values = ["", "NA", "N/A"]           # a cell with one of these is missing
    [ids]                                      # how every `id = true` field is normalised
    lower = true
    [[sources]]
    file = "views.csv"                         # relative to the mapping file
    event = "member.action"                    # an event type (streams.schemas)
    time = { column = "view_start", format = "%Y-%m-%d %H:%M:%S", timezone = "UTC" }
    [sources.fields]
    member_id = { column = "applicant_id", id = true, prefix = "m" }
    action = { value = "view" }
    dwell_s = { seconds_from = "view_start", seconds_to = "view_end" }
    [[sources.skip]]
    column = "test_account"
    equals = ["1", "true"]
    reason = "test account"
"""
from __future__ import annotations

import re
import tomllib
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streams.schemas import CLASS_OF_TYPE

_STRICT = ConfigDict(extra="forbid", frozen=True)


class IdRules(BaseModel):
    """Exports spell one id several ways ("00123", "123.0", " ACME Corp "); these make one."""

    model_config = _STRICT
    lower: bool = True
    strip_float_suffix: bool = True  # "123.0" -> "123": ids that passed through a float column
    separator: str = "-"  # runs of anything but letters, digits, '.', '_' and '-' become this

    def normalize(self, raw: str, prefix: str = "") -> str:
        text = raw.strip()
        if self.strip_float_suffix and _FLOAT_ID.fullmatch(text):
            text = text.split(".")[0]
        if self.lower:
            text = text.lower()
        text = _ID_JUNK.sub(self.separator, text).strip(self.separator)
        return f"{prefix}{text}" if text else ""


# compiled once: normalize runs for every id cell of every row
_FLOAT_ID = re.compile(r"\d+\.0+")
_ID_JUNK = re.compile(r"[^\w.\-]+")


class TimeRule(BaseModel):
    model_config = _STRICT
    column: str
    format: str = "iso"  # "iso" (ISO 8601), "epoch" (seconds), or a strptime pattern
    timezone: str = "UTC"  # for times that carry no zone

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        ZoneInfo(v)  # raises for an unknown zone
        return v

    def parse(self, text: str) -> datetime:
        return self.parser()(text)

    def parser(self) -> Callable[[str], datetime]:
        """parse(), compiled once per format and zone: an import calls it for every row."""
        return _time_parser(self.format, self.timezone)


@lru_cache(maxsize=64)
def _time_parser(fmt: str, zone_name: str) -> Callable[[str], datetime]:
    zone = ZoneInfo(zone_name)

    def zoned(t: datetime) -> datetime:
        return t if t.tzinfo else t.replace(tzinfo=zone)

    if fmt == "epoch":
        return lambda text: datetime.fromtimestamp(float(text.strip()), tz=timezone.utc)
    if fmt == "iso":
        return lambda text: zoned(datetime.fromisoformat(text.strip()))
    fast = _fixed_width_pattern(fmt)

    def parse(text: str) -> datetime:
        text = text.strip()
        m = fast[0].fullmatch(text) if fast is not None else None
        if m is not None:
            cells = m.groups()
            try:
                return datetime(*map(int, cells if fast[1] is None else [cells[i] for i in fast[1]]), tzinfo=zone)
            except ValueError:
                pass  # out of range (a 31st of April): strptime says so in its own words
        return zoned(datetime.strptime(text, fmt))

    return parse


# strptime is general and slow (a Python function, a regex of alternatives per
# directive). The common export patterns are zero-padded numbers between separators:
# a regex of exactly those digits matches only text strptime reads the same way, and
# anything else (unpadded, other directives, an error to word) goes to strptime.
_FIXED_WIDTH = {"Y": r"([0-9]{4})", "m": r"([0-9]{2})", "d": r"([0-9]{2})",
                "H": r"([0-9]{2})", "M": r"([0-9]{2})", "S": r"([0-9]{2})"}
_ARGS = "YmdHMS"  # datetime()'s argument order


def _fixed_width_pattern(fmt: str) -> tuple[re.Pattern, list[int] | None] | None:
    """A regex for `fmt` and, for each of datetime()'s arguments, the group that holds
    it; None unless `fmt` has year, month and day (hour, minute, second optional), each
    once, separated by literals (adjacent directives could split digits otherwise)."""
    parts = re.split(r"(%.)", fmt)
    directives = [p[1] for p in parts if p.startswith("%")]
    if not set("Ymd") <= set(directives) <= set(_ARGS) or len(set(directives)) != len(directives):
        return None
    regex, last_was_directive = "", False
    for part in parts:
        if part.startswith("%"):
            if last_was_directive:
                return None
            regex, last_was_directive = regex + _FIXED_WIDTH[part[1]], True
        elif part:
            if "%" in part:
                return None  # a lone trailing '%': strptime's error
            # literally (strptime would also take other whitespace runs and either case:
            # such text goes to strptime)
            regex, last_was_directive = regex + re.escape(part), False
    # datetime(Y, m, d[, H[, M[, S]]]): an argument left out after one given is 0, as strptime leaves it
    given = [c for c in _ARGS if c in directives]
    if given != list(_ARGS[:len(given)]):
        return None  # e.g. seconds without minutes: rare, strptime's
    order = [directives.index(c) for c in given]
    return re.compile(regex), None if order == sorted(order) else order  # None: the groups are in order


class FieldRule(BaseModel):
    """One payload field: from a column (or the first present of several), several
    columns joined, a constant, or the seconds between two time columns."""

    model_config = _STRICT
    column: str | None = None
    fallback: list[str] = Field(default_factory=list)  # columns tried in order when `column` is missing
    join: list[str] = Field(default_factory=list)  # columns joined by `sep` (missing ones left out)
    sep: str = ", "
    value: Any = None
    split: str | None = None  # a list field: the cell split on this
    id: bool = False  # normalised by the mapping's [ids] rules
    prefix: str = ""
    seconds_from: str | None = None
    seconds_to: str | None = None  # missing: unknown (an open-ended interval)

    @model_validator(mode="after")
    def _one_source(self) -> "FieldRule":
        given = [self.column is not None, bool(self.join), self.value is not None, self.seconds_from is not None]
        if sum(given) != 1:
            raise ValueError("a field takes exactly one of column, join, value, seconds_from")
        if (self.seconds_from is None) != (self.seconds_to is None):
            raise ValueError("seconds_from and seconds_to go together")
        return self


class SkipRule(BaseModel):
    model_config = _STRICT
    column: str
    equals: list[str] = Field(default_factory=list)  # skip when the cell is one of these
    missing: bool = False  # skip when the cell is missing
    reason: str

    def matches(self, cell: str | None) -> bool:
        return (self.missing and cell is None) or (cell is not None and cell in self.equals)


class Source(BaseModel):
    model_config = _STRICT
    file: str
    format: Literal["auto", "csv", "jsonl", "parquet"] = "auto"
    delimiter: str = ","
    encoding: str = "utf-8"
    event: str
    time: TimeRule
    fields: dict[str, FieldRule]
    skip: list[SkipRule] = Field(default_factory=list)

    @field_validator("event")
    @classmethod
    def _known_event(cls, v: str) -> str:
        if v not in CLASS_OF_TYPE:
            raise ValueError(f"unknown event type {v!r}; expected one of {sorted(CLASS_OF_TYPE)}")
        return v

    @model_validator(mode="after")
    def _known_fields(self) -> "Source":
        payload = CLASS_OF_TYPE[self.event].model_fields["payload"].annotation
        unknown = sorted(set(self.fields) - set(payload.model_fields))
        if unknown:
            raise ValueError(f"{self.file}: {self.event} has no field(s) {unknown}; "
                             f"its fields: {sorted(payload.model_fields)}")
        return self

    def time_rule_for(self, column: str) -> TimeRule:
        """How another time column of this source parses: as the event time does."""
        return self.time.model_copy(update={"column": column})

    @property
    def kind(self) -> str:
        if self.format != "auto":
            return self.format
        suffix = Path(self.file).suffix.lower()
        return {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                ".parquet": "parquet"}.get(suffix, "csv")


class Mapping(BaseModel):
    model_config = _STRICT
    null_values: list[str] = Field(default_factory=lambda: ["", "NA", "N/A", "null", "NULL", "None", "nan"])
    ids: IdRules = Field(default_factory=IdRules)
    sources: list[Source] = Field(min_length=1)
    base_dir: Path = Path(".")  # where `file`s are read from: the mapping file's folder

    def path_of(self, source: Source) -> Path:
        return self.base_dir / source.file


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a TOML mapping; its files are relative to its own folder."""
    path = Path(path)
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    return Mapping.model_validate({**raw, "base_dir": path.parent})
