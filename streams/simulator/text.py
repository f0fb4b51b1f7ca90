"""Titles, job descriptions and member "about" texts, rendered from taxonomy labels.

Every title is an ESCO occupation label with at most one seniority word around it
(`split_title` undoes that), so the words that carry "fit" are real taxonomy words.
"""
from __future__ import annotations

from streams.schemas import Seniority

# (prefix, suffix) a title takes at each seniority.
TITLE_AFFIXES: dict[Seniority, tuple[str, str]] = {
    Seniority.INTERN: ("", " Intern"),
    Seniority.ENTRY: ("Junior ", ""),
    Seniority.MID: ("", ""),
    Seniority.SENIOR: ("Senior ", ""),
    Seniority.LEAD: ("Lead ", ""),
    Seniority.DIRECTOR: ("Principal ", ""),
    Seniority.EXECUTIVE: ("Head ", ""),
}
_SMALL_WORDS = frozenset("a an and as at by for in of on or the to with".split())


def title_case(label: str) -> str:
    """'ict help desk manager' -> 'Ict ...' would be wrong: only all-lowercase words change."""
    words = label.split()
    return " ".join(
        w if (i and w in _SMALL_WORDS) or not w.islower() else w[0].upper() + w[1:]
        for i, w in enumerate(words)
    )


_RANKED_WORDS = ("manager", "director", "head", "chief", "governor", "officer", "supervisor")


def make_title(label: str, seniority: Seniority) -> str:
    if seniority.rank >= Seniority.DIRECTOR.rank and any(w in label for w in _RANKED_WORDS):
        return title_case(label)  # "Principal Central Bank Governor" reads wrong: the label says it
    prefix, suffix = TITLE_AFFIXES[seniority]
    return f"{prefix}{title_case(label)}{suffix}"


def split_title(title: str) -> tuple[str, Seniority | None]:
    """(occupation label as written in the title, seniority its affix names or None)."""
    for seniority, (prefix, suffix) in TITLE_AFFIXES.items():
        if (prefix or suffix) and title.startswith(prefix) and title.endswith(suffix):
            return title[len(prefix): len(title) - len(suffix)], seniority
    return title, None


def first_sentences(text: str, limit: int = 420) -> str:
    """The definition's opening sentences, cut at a sentence end within `limit` chars."""
    if len(text) <= limit:
        return text
    cut = text.rfind(". ", 0, limit)
    return text[: cut + 1] if cut > 0 else text[:limit].rsplit(" ", 1)[0] + "."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_PERKS = (
    "Hybrid working and a yearly learning budget.",
    "Flexible hours, pension plan and 28 days of holiday.",
    "Competitive salary, health insurance and a friendly team.",
    "Relocation support is available for this role.",
    "On-site role with shift allowance.",
    "Mentoring from senior colleagues and clear progression.",
)
# When jobs state a work arrangement (wishes.py), perks must not contradict it.
_PERKS_WITHOUT_ARRANGEMENT = (
    "A yearly learning budget and a friendly team.",
    "Pension plan and 28 days of holiday.",
    "Competitive salary, health insurance and a friendly team.",
    "Relocation support is available for this role.",
    "Shift allowance and a generous pension.",
    "Mentoring from senior colleagues and clear progression.",
)
_MIN_YEARS = {
    Seniority.INTERN: 0, Seniority.ENTRY: 0, Seniority.MID: 2, Seniority.SENIOR: 5,
    Seniority.LEAD: 8, Seniority.DIRECTOR: 10, Seniority.EXECUTIVE: 15,
}


def min_years(seniority: Seniority) -> int:
    """Years of experience a job at this level asks for."""
    return _MIN_YEARS[seniority]


# `variant` picks among phrasings: any int drawn once per entity (texts are rendered
# again whenever an entity is emitted, so they must not consume the day's randomness).
def job_description(
    variant: int, company: str, title: str, location: str, definition: str,
    seniority: Seniority, skills: list[str], arrangement: str = "",
) -> str:
    """`arrangement`: a sentence stating where the work is done, or "" (none stated)."""
    duties, asks = skills[: max(2, len(skills) // 2)], skills[max(2, len(skills) // 2):] or skills[:1]
    years = _MIN_YEARS[seniority]
    experience = f"{years}+ years of experience" if years else "no prior experience needed"
    return (
        f"{company} is hiring a {title} in {location}. {first_sentences(definition)} "
        f"Responsibilities: {'; '.join(duties)}. "
        f"Requirements: {experience} ({seniority.value} level); {', '.join(asks)}. "
        + (f"{_PERKS_WITHOUT_ARRANGEMENT[variant % len(_PERKS)]} {arrangement}" if arrangement
           else _PERKS[variant % len(_PERKS)])
    )


def member_about(
    variant: int, occupation: str, seniority: Seniority, years: float, location: str,
    skills: list[str], goal: str, mobility: str, wish: str = "",
) -> str:
    shown = skills[: 2 + variant % 3]
    parts = [
        f"{seniority.value.capitalize()}-level {occupation} with {years:.0f} years of experience, "
        f"based in {location}.",
        f"Experienced in: {_join(shown)}.",
    ]
    # What they want shows in their own words only some of the time: the rest must
    # be learned from what they do.
    if goal:
        parts.append(goal)
    if wish:  # a wish no profile field holds (wishes.py)
        parts.append(wish)
    if mobility:
        parts.append(mobility)
    return " ".join(parts)
