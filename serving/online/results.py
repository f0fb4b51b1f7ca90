"""Score results that are valid by construction.

Every field of a `ScoreResult` has a bound (`streams.schemas`), and a result that
breaks one cannot even be built: pydantic raises, the scoring agent crashes and the
member gets no answer at all. So results are built here, where each value is fitted
to its bound first: the result's event id is derived so it always fits an `Id`
(the request's own id may already be 128 characters), reasons and texts are cut and
cleaned of control characters, and a non-finite score (JSON cannot carry NaN) becomes a finite one.
"""
from __future__ import annotations

import hashlib
import math
import re
from typing import Iterable, Mapping

from streams.schemas import (
    ID_MAX,
    LONG_TEXT_MAX,
    MAX_ITEMS,
    MAX_REASONS,
    MAX_TIMINGS,
    SHORT_TEXT_MAX,
    ScoredItem,
    ScoreResult,
    ScoreStatus,
)

RESULT_SUFFIX = ":result"
_FLOAT_MAX = 1.7976931348623157e308


def result_event_id(request_event_id: str) -> str:
    """`<request event id>:result`, or, when that would pass ID_MAX, a prefix of the
    request's id plus a digest of all of it (still unique per request, still readable)."""
    plain = request_event_id + RESULT_SUFFIX
    if len(plain) <= ID_MAX:
        return plain
    digest = hashlib.sha256(request_event_id.encode()).hexdigest()[:16]
    keep = ID_MAX - len(RESULT_SUFFIX) - len(digest) - 1
    return f"{request_event_id[:keep]}~{digest}{RESULT_SUFFIX}"


_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
_CONTROLS_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clip(text: str, limit: int, keep_lines: bool = False) -> str:
    """`text` fitted to a ShortText (or, with `keep_lines`, a LongText): control
    characters become spaces, and it is cut to `limit` characters."""
    text = (_CONTROLS_BUT_LINES if keep_lines else _CONTROLS).sub(" ", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def finite(score: float) -> float:
    if math.isnan(score):
        return -_FLOAT_MAX  # ranks last, as "no evidence" should
    return max(-_FLOAT_MAX, min(_FLOAT_MAX, score))


def scored_item(job_id: str, score: float, reasons: Iterable[str] = ()) -> ScoredItem:
    return ScoredItem(job_id=job_id, score=finite(float(score)),
                      reasons=[clip(r, SHORT_TEXT_MAX) for r in list(reasons)[:MAX_REASONS]])


def score_result(request_id: str, member_id: str, *, items: list[ScoredItem] = (), model_id: str,
                 timings_ms: Mapping[str, float] | None = None, error: str | None = None,
                 status: ScoreStatus = ScoreStatus.OK) -> ScoreResult:
    timings = {clip(k, SHORT_TEXT_MAX): finite(float(v)) for k, v in list((timings_ms or {}).items())[:MAX_TIMINGS]}
    return ScoreResult(request_id=request_id, member_id=member_id, items=list(items)[:MAX_ITEMS],
                       model_id=clip(model_id, SHORT_TEXT_MAX), timings_ms=timings,
                       error=clip(error, LONG_TEXT_MAX, keep_lines=True) if error is not None else None, status=status)
