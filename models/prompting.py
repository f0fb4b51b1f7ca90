"""Prompts bounded in tokens, keeping the newest history.

`models.verbalizer` bounds history in characters, which a tokenizer turns into an
unpredictable number of tokens. Here the bound is the model's: the member prefix
must fit `max_tokens`, so the oldest interactions are dropped until it does
(binary search over how many of the newest to keep: ~5 tokenizations, not 30).
If the profile alone is too long (a long about text), its lists are cut too.

Tokens are counted by the model's own encoder (`encode`: text -> ids), the one that
will encode the prompt: a trimmed vocabulary spells a rare word in several ids, and
member text is encoded with special-token strings split into characters, so the
tokenizer's plain count can fall short of what the model reads.

The member context (profile, query, history) does not depend on the task or the
phrasing, so it is fitted once per request against the budget left by the longest
instruction, and each phrasing only prepends its instruction (`with_instruction`):
the same text `verbalizer.member_prefix` renders.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from models.verbalizer import (
    H_INSTRUCTION,
    H_QUESTION,
    INSTRUCTIONS,
    Interaction,
    ProfileLike,
    instruction,
    member_context,
)


Encode = Callable[[str], Sequence[int]]  # e.g. `RankerPrompts.encode_text`


def n_prefix_tokens(encode: Encode, prefix: str) -> int:
    """Tokens of a prefix as it is inside a whole prompt (its closing blank line
    tokenizes differently before a "## Question" than at the end of the text)."""
    return len(encode(prefix + H_QUESTION)) - len(encode(H_QUESTION))


def newest(history: Iterable[Interaction], n: int, skip: Sequence[str] = ()) -> tuple[Interaction, ...]:
    """The n newest interactions (the verbalizer's own order: newest first, ties by id)."""
    kept = (it for it in history if it.action not in skip)
    return tuple(sorted(kept, key=lambda it: (-it.event_time, it.event_id))[:n])


def with_instruction(context: str, phrasing: int = 0, focus: str | None = None) -> str:
    return f"{H_INSTRUCTION}\n{instruction(phrasing, focus)}\n\n" + context


def _longest_instruction_tokens(encode: Encode) -> int:
    # Not cached: a cache keyed on a ranker's encoder would keep the ranker's model alive.
    return max(len(encode(with_instruction("", i))) for i in range(len(INSTRUCTIONS))) + 1


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


def fit_member_context(encode: Encode, profile: ProfileLike, history: Iterable[Interaction], now: float,
                       max_tokens: int, *, query: str | None = None, skip_actions: Sequence[str] = (),
                       head: str = "") -> str:
    """Profile, query and as much of the newest history as fits: `head + context`
    stays within max_tokens (head is the instruction, or "" to leave room for any)."""
    items = newest(history, 10**9, skip_actions)

    def render(n: int, p: ProfileLike = profile) -> str:
        return member_context(p, items[:n], now, query=query, max_history_chars=10**9)

    def fits(text: str) -> bool:
        return n_prefix_tokens(encode, head + text) <= max_tokens

    if fits(render(len(items))):
        return render(len(items))
    lo, hi = 0, len(items)  # render(hi) does not fit; render(lo) fits unless lo == 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(render(mid)):
            lo = mid
        else:
            hi = mid
    text = render(lo)
    if fits(text):
        return text
    # Even with no history the profile overflows: halve its lists until it fits.
    n_skills, about = len(profile.skills), len(profile.about or "")
    while n_skills > 0 or about > 0:
        n_skills, about = n_skills // 2, about // 2
        text = render(0, _clip(profile, n_skills, about))
        if fits(text):
            return text
    raise ValueError(f"the bare profile needs {n_prefix_tokens(encode, head + text)} tokens with its "
                     f"instruction, more than max_tokens={max_tokens}")


def fit_context_for_any_phrasing(encode: Encode, profile: ProfileLike, history: Iterable[Interaction], now: float,
                                 max_tokens: int, **kwargs) -> str:
    """A member context that fits max_tokens after *any* instruction phrasing: fit once
    per request, then `with_instruction(context, phrasing)` for each phrasing."""
    return fit_member_context(encode, profile, history, now, max_tokens - _longest_instruction_tokens(encode),
                              **kwargs)


def fit_prefix(encode: Encode, profile: ProfileLike, history: Iterable[Interaction], now: float,
               max_tokens: int, *, phrasing: int = 0, focus: str | None = None, query: str | None = None,
               skip_actions: Sequence[str] = ()) -> str:
    """The member prefix for one phrasing with as much of the newest history as fits."""
    head = with_instruction("", phrasing, focus)
    context = fit_member_context(encode, profile, history, now, max_tokens, query=query,
                                 skip_actions=skip_actions, head=head)
    return head + context
