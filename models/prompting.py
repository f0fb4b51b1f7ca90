"""Prompts bounded in tokens, keeping the newest history.

`models.verbalizer` bounds history in characters, which a tokenizer turns into an
unpredictable number of tokens. Here the bound is the model's: the member prefix
must fit `max_prefix_tokens`, so the oldest interactions are dropped until it does
(binary search over how many of the newest to keep: ~5 tokenizations, not 30).
If the profile alone is too long (100 skills, a long about), its lists are cut too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from models.verbalizer import H_QUESTION, Interaction, JobCard, JobLike, ProfileLike, Prompt, job_segment, member_prefix


def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def n_prefix_tokens(tokenizer, prefix: str) -> int:
    """Tokens of a prefix as it is inside a whole prompt (its closing blank line
    tokenizes differently before a "## Question" than at the end of the text)."""
    return n_tokens(tokenizer, prefix + H_QUESTION) - n_tokens(tokenizer, H_QUESTION)


def newest(history: Iterable[Interaction], n: int) -> tuple[Interaction, ...]:
    """The n newest interactions (the verbalizer's own order: newest first, ties by id)."""
    return tuple(sorted(history, key=lambda it: (-it.event_time, it.event_id))[:n])


@dataclass(frozen=True)
class _ClippedProfile:
    """A profile with its lists cut, for when even an empty history does not fit."""

    title: str
    occupation: str
    skills: Sequence[str]
    location: str
    seniority: object
    years_experience: float
    about: str


def _clip(p: ProfileLike, n_skills: int, about_chars: int) -> _ClippedProfile:
    return _ClippedProfile(p.title, p.occupation, list(p.skills)[:n_skills], p.location,
                           p.seniority, p.years_experience, (p.about or "")[:about_chars])


def fit_prefix(
    tokenizer,
    task: str,
    profile: ProfileLike,
    history: Iterable[Interaction],
    now: float,
    max_tokens: int,
    **kwargs,
) -> str:
    """The member prefix with as much of the newest history as fits in max_tokens."""
    items = newest(history, 10**9)

    def render(n: int, p: ProfileLike = profile) -> str:
        return member_prefix(task, p, items[:n], now, **kwargs)

    if n_prefix_tokens(tokenizer, render(len(items))) <= max_tokens:
        return render(len(items))
    lo, hi = 0, len(items)  # invariant: render(lo) fits or lo == 0; render(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if n_prefix_tokens(tokenizer, render(mid)) <= max_tokens:
            lo = mid
        else:
            hi = mid
    text = render(lo)
    if n_prefix_tokens(tokenizer, text) <= max_tokens:
        return text
    # Even with no history the profile overflows: halve its lists until it fits.
    n_skills, about = len(profile.skills), len(profile.about or "")
    while n_skills > 0 or about > 0:
        n_skills, about = n_skills // 2, about // 2
        text = render(0, _clip(profile, n_skills, about))
        if n_prefix_tokens(tokenizer, text) <= max_tokens:
            return text
    raise ValueError(
        f"task {task!r}: the instruction and bare profile need {n_prefix_tokens(tokenizer, text)} tokens, "
        f"more than max_tokens={max_tokens}"
    )


def fit_prompt(
    tokenizer,
    task: str,
    profile: ProfileLike,
    history: Iterable[Interaction],
    job: JobLike | JobCard,
    now: float,
    max_prefix_tokens: int,
    **kwargs,
) -> Prompt:
    """A whole prompt whose member prefix fits the budget (segments are bounded by the
    verbalizer's fields and cut by `Ranker.encode_segment` if a job is pathological)."""
    prefix = fit_prefix(tokenizer, task, profile, history, now, max_prefix_tokens, **kwargs)
    return Prompt(prefix, job_segment(job, task), task)
