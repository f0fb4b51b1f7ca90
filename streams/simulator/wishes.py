"""Wishes members state only in free text: the part of the hidden truth a model must read.

Real members write things no structured field holds: "looking to move into
management", "only remote or hybrid", "done with retail, I want to work with
patients". Here a share of members (`MarketplaceConfig.text_preference_share`) hold
one such wish. It changes their hidden affinity (truth.py: `wish_factor`, and for a
change of field the wanted occupations themselves), and it is stated only in their
`about` text (and, where people would, in some search queries), never in a profile
field. Three kinds:

- `arrangement`: the work arrangement they accept (remote only, remote or hybrid,
  on-site only). Every job has a hidden arrangement that its description states, in
  one of several wordings; a job outside the accepted set is worth less to them, and
  a remote job is in reach wherever its office is for someone who asked for remote.
- `lead`: a senior or lead member who wants to lead people next: target level one
  up, and jobs that do not lead people (below lead level, not a managerial
  occupation) are worth less.
- `field`: a member who wants to leave their field (SOC major group) for another one
  named in words; their wanted occupations are in the new field.

Each wish is stated in one of a fixed set of paraphrases. Some name the target in
the words the matching jobs use ("remote", "management", "healthcare"); the rest do
not: they say it without those words ("I never want to commute again") or negated
("not interested in anything office-based", "done with retail"), which a
bag-of-words reader gets wrong. `literal()` tells which is which for one statement,
by the tokens a TF-IDF vectoriser would see (`\\b\\w\\w+\\b`, lowercased).

Draws come from a per-member stream `random.Random(f"{seed}/wishes/{idx}")`, never
from the entity or day streams, so with the share at 0 the simulator's bytes are what
they were before wishes existed, and with it on every structured field is unchanged.
"""
from __future__ import annotations

import random
import re

ON_SITE, HYBRID, REMOTE = range(3)
ARRANGEMENTS = ("on-site", "hybrid", "remote")

# ---- the job side: every job's arrangement, stated in its description -------------------

# Majors where desk work is the norm: more of their jobs are hybrid or remote.
_DESK_MAJORS = frozenset({"11", "13", "15", "17", "19", "23", "27", "41", "43"})

ARRANGEMENT_SENTENCES: dict[int, tuple[str, ...]] = {
    ON_SITE: (
        "This role is on-site, at our premises.",
        "Based on site, full time.",
        "You will work in person at our site every day.",
        "Office-based, five days a week.",
    ),
    HYBRID: (
        "Hybrid: two days a week in the office, the rest from home.",
        "A flexible hybrid pattern of office and home days.",
        "Split your week between home and the office.",
        "A mix of office and home working.",
    ),
    REMOTE: (
        "This role is fully remote.",
        "Work from anywhere: the team is distributed.",
        "Remote-first: you can work from home every day.",
        "A remote position; the team is distributed across time zones.",
    ),
}
# The words that state each arrangement in job text (every sentence above has one).
ARRANGEMENT_WORDS: dict[int, frozenset[str]] = {
    ON_SITE: frozenset({"site", "onsite", "premises", "person", "office"}),
    HYBRID: frozenset({"hybrid", "flexible", "split", "mix", "office", "home"}),
    REMOTE: frozenset({"remote", "remotely", "anywhere", "distributed", "home"}),
}


def job_arrangement(variant: int, major: str) -> int:
    """A job's hidden arrangement, from its phrasing variant (no new draws)."""
    u = (variant // 7) % 100  # variant % 6 picks the perk: use other digits
    on_site, hybrid = (30, 70) if major in _DESK_MAJORS else (70, 88)
    return ON_SITE if u < on_site else HYBRID if u < hybrid else REMOTE


def arrangement_sentence(variant: int, arrangement: int) -> str:
    options = ARRANGEMENT_SENTENCES[arrangement]
    return options[(variant // 701) % len(options)]


# ---- the member side: what they write ----------------------------------------------------

# (accepted arrangements, literal statements, statements without the accepted words)
_ARRANGEMENT_WISHES: tuple[tuple[frozenset[int], tuple[str, ...], tuple[str, ...]], ...] = (
    (frozenset({REMOTE}),
     ("Only open to fully remote roles.", "Looking for remote work, from home."),
     ("I never want to commute again.", "Not interested in anything office-based.",
      "My desk is my kitchen table and I would like to keep it that way.")),
    (frozenset({REMOTE, HYBRID}),
     ("Only remote or hybrid roles, please.", "Looking for flexible working: hybrid or remote."),
     ("Anything but a full-time on-site job.", "Not willing to commute five days a week.",
      "I need some say over where I work each day.")),
    (frozenset({ON_SITE}),
     ("I prefer working on site with my team.", "Looking for an office-based role."),
     ("Not interested in remote work.", "I do my best work side by side with colleagues.",
      "Working from home is not for me.")),
)
_ARRANGEMENT_WISH_WEIGHTS = (0.3, 0.45, 0.25)

LEAD_WORDS = frozenset(
    "manage manager managers management managing lead leader leaders leadership leading head "
    "supervisor supervise supervising director principal senior chief".split())
_LEAD_LITERAL = (
    "Looking to move into management.",
    "Keen to step up into a team lead role.",
    "My next step is a people manager position.",
)
_LEAD_UNLITERAL = (
    "Ready to take responsibility for people, not just tasks.",
    "I want my next role to include coaching and growing others.",
    "Hoping to build and run a team of my own.",
    "Done being an individual contributor.",
)

# SOC major group -> (its name in plain words, what the work is about, said without it).
FIELD_WORDS: dict[str, tuple[str, str]] = {
    "13": ("finance", "budgets and numbers"),
    "15": ("tech", "building software"),
    "17": ("engineering", "designing machines and structures"),
    "19": ("science", "research and experiments"),
    "21": ("social work", "supporting people through hard times"),
    "23": ("law", "contracts and courtrooms"),
    "25": ("education", "helping young people learn"),
    "27": ("the creative industries", "design, media and storytelling"),
    "29": ("healthcare", "caring for patients"),
    "31": ("healthcare", "looking after patients"),
    "33": ("security", "keeping people safe"),
    "35": ("hospitality", "kitchens and restaurants"),
    "37": ("facilities work", "keeping buildings and grounds in shape"),
    "39": ("personal care", "helping people look and feel well"),
    "41": ("retail", "the shop floor"),
    "43": ("admin", "paperwork and scheduling"),
    "45": ("farming", "working the land"),
    "47": ("construction", "building sites"),
    "49": ("maintenance and repair", "fixing machines"),
    "51": ("manufacturing", "the production line"),
    "53": ("logistics", "moving goods around"),
}
_FIELD_LITERAL = (
    "Want to leave {old} for {new}.",
    "Looking to switch from {old} into {new}.",
    "Retraining to move into {new}.",
)
_FIELD_UNLITERAL = (  # the old field named (a bag of words reads it as wanted), the new one not
    "Done with {old}: I want my next job to be about {new_work}.",
    "After years in {old}, my heart is in {new_work}.",
    "Time to put {old} behind me and move towards {new_work}.",
    "Anything but {old} from now on.",
)
# Words too common to count as naming a field when they appear in an occupation label.
LABEL_STOPWORDS = frozenset(
    "and or of the for in on with to at by worker workers assistant specialist officer "
    "technician operator other all".split())

LITERAL_SHARE = 0.45  # chance a wish is written in the matching jobs' own words
_TOKEN = re.compile(r"\b\w\w+\b")


def tokens(sentence: str) -> set[str]:
    """The tokens a default TF-IDF vectoriser sees (lowercased, 2+ word characters)."""
    return set(_TOKEN.findall(sentence.lower()))


def literal(sentence: str, target_words: frozenset[str]) -> bool:
    """Does the statement contain a word the matching jobs are described with?"""
    return not tokens(sentence).isdisjoint(target_words)


def wish_rng(seed: int, member_idx: int) -> random.Random:
    return random.Random(f"{seed}/wishes/{member_idx}")


def _say(rng: random.Random, literal_options: tuple[str, ...], other_options: tuple[str, ...]) -> str:
    return rng.choice(literal_options if rng.random() < LITERAL_SHARE else other_options)


def arrangement_wish(rng: random.Random) -> tuple[frozenset[int], str, frozenset[str]]:
    """(accepted arrangements, the sentence, the words that state them in job text)."""
    accepted, lit, other = rng.choices(_ARRANGEMENT_WISHES, weights=_ARRANGEMENT_WISH_WEIGHTS)[0]
    words = frozenset().union(*(ARRANGEMENT_WORDS[a] for a in sorted(accepted)))
    return accepted, _say(rng, lit, other), words


def lead_wish(rng: random.Random) -> tuple[str, frozenset[str]]:
    return _say(rng, _LEAD_LITERAL, _LEAD_UNLITERAL), LEAD_WORDS


def field_wish(rng: random.Random, old_major: str, new_major: str,
               new_labels: list[str]) -> tuple[str, frozenset[str]]:
    """The sentence, and the words naming the new field: its name and its occupations'."""
    old, _ = FIELD_WORDS[old_major]
    new, new_work = FIELD_WORDS[new_major]
    sentence = _say(rng, _FIELD_LITERAL, _FIELD_UNLITERAL).format(old=old, new=new, new_work=new_work)
    words = tokens(new).union(*(tokens(label) for label in new_labels)) - LABEL_STOPWORDS
    return sentence, frozenset(words)


def query_with_wish(query: str, accepted: frozenset[int], wants_to_lead: bool) -> str:
    """How a member with a wish sometimes searches: "nurse remote", "lead nurse"."""
    if REMOTE in accepted:
        return f"{query} remote"
    if HYBRID in accepted:
        return f"{query} hybrid"
    if wants_to_lead:
        return f"lead {query}"
    return query
