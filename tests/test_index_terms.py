"""The vocabulary's key lookup, which compiles every query batch's terms into columns."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import index.terms as terms_module
from index import JobIndex, Query
from index.terms import KeyTable, Vocabulary, term_keys
from tests.index_reference import random_catalog

ROOT = Path(__file__).resolve().parents[1]


def test_key_table_finds_every_key_through_slot_clashes_and_growth():
    rng = np.random.default_rng(0)
    table, given_keys, given_cols = KeyTable(), [], []
    for _ in range(25):
        keys = rng.integers(-2**63, 2**63 - 1, size=int(rng.integers(1, 1500)), dtype=np.int64)
        keys[: len(keys) // 3] = (keys[: len(keys) // 3] & ~np.int64(0xFFFF)) | 7  # all want slot 7
        start = sum(map(len, given_keys))
        cols = np.arange(start, start + len(keys))
        table = table.with_entries(keys, cols)
        given_keys.append(keys)
        given_cols.append(cols)
    keys, cols = np.concatenate(given_keys), np.concatenate(given_cols)
    assert table.size >= 4 * len(keys) and len(table) == len(keys)
    np.testing.assert_array_equal(table.lookup(keys), cols)
    np.testing.assert_array_equal(table.lookup(keys[::-1]), cols[::-1])
    unknown = rng.integers(-2**63, 2**63 - 1, size=5000, dtype=np.int64)
    unknown = unknown[~np.isin(unknown, keys)]
    assert (table.lookup(unknown) == -1).all()


def test_an_older_table_is_unchanged_by_a_newer_one():
    old = KeyTable().with_entries(np.array([1, 2, 1025]), np.array([0, 1, 2]))
    new = old.with_entries(np.array([3, 2049]), np.array([3, 4]))
    np.testing.assert_array_equal(old.lookup(np.array([1, 2, 1025, 3, 2049])), [0, 1, 2, -1, -1])
    np.testing.assert_array_equal(new.lookup(np.array([1, 2, 1025, 3, 2049])), [0, 1, 2, 3, 4])


def test_vocabulary_columns_by_key_equal_columns_by_string():
    vocab = Vocabulary()
    vocab.add([f"skill:s{i}" for i in range(3000)])
    vocab.add(["loc:berlin", "skill:s5", "title:nurse"])
    asked = ["title:nurse", "skill:s5", "skill:never", "loc:berlin", "skill:s2999"]
    np.testing.assert_array_equal(vocab.columns_of_keys(term_keys(asked)), vocab.columns(asked))
    assert list(vocab.columns(asked)) == [3001, 5, -1, 3000, 2999]


def test_two_terms_with_one_key_are_refused(monkeypatch):
    monkeypatch.setattr(terms_module, "term_keys", lambda ts: np.zeros(len(list(ts)), np.int64))
    vocab = Vocabulary()
    vocab.add(["skill:a"])
    with pytest.raises(RuntimeError, match="share a 64-bit key"):
        vocab.add(["skill:b"])


def test_a_query_pickled_in_another_process_matches_the_same_jobs():
    """Term keys are this process's string hashes: a query that crossed processes must
    carry its terms, not its keys, or it would silently match nothing."""
    made_elsewhere = subprocess.run(
        [sys.executable, "-c",
         "import pickle, sys; from index import Query; "
         "sys.stdout.buffer.write(pickle.dumps(Query(terms={'occ:chefs': 1.0, 'loc:paris': 0.5}, "
         "links={'skill:skill3': 2.0}, penalties={'sen:senior': 0.3})))"],
        cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "12345"}, capture_output=True, check=True).stdout
    query = pickle.loads(made_elsewhere)
    local = Query(terms={"occ:chefs": 1.0, "loc:paris": 0.5}, links={"skill:skill3": 2.0},
                  penalties={"sen:senior": 0.3})
    np.testing.assert_array_equal(query.packed.keys, local.packed.keys)
    jobs, emb = random_catalog(3, 200, 8)
    index = JobIndex.create("term,exact", dim=8)
    index.upsert(jobs, embeddings=emb)
    got, want = index.search([query], k=20), index.search([local], k=20)
    assert want.scores[0][0] > 0
    assert list(got.ids[0]) == list(want.ids[0])
    np.testing.assert_allclose(got.scores[0], want.scores[0])


# ---- real exports: unknown fields and free-text places --------------------------------

def test_locations_agree_whatever_their_case_punctuation_and_spacing():
    from index.terms import location_term

    spellings = ["Seattle, WA", "seattle ,wa.", "SEATTLE,  WA", " Seattle,WA "]
    assert {location_term(s) for s in spellings} == {"loc:seattle, wa"}
    assert location_term("St. Louis") == location_term("st louis") == "loc:st louis"
    assert location_term("Seattle") != location_term("Seattle, WA")  # a region is part of the place


def test_an_unknown_level_or_place_gives_no_term():
    from index.records import as_job, as_member
    from index.terms import job_terms
    from index.query import member_terms

    job = as_job({"job_id": "j1", "title": "Staff Nurse", "seniority": "unknown", "location": ""})
    assert job_terms(job) == ("title:staff", "title:nurse")
    member = as_member({"member_id": "m1", "title": "Nurse", "seniority": "unknown", "location": ""})
    assert member_terms(member) == {"title:nurse": 1.0}


def test_a_job_without_skills_or_occupation_is_found_by_its_title():
    from index import JobIndex, member_query

    index = JobIndex.create("term,exact", dim=8)
    index.upsert([{"job_id": "j-nurse", "title": "Registered Nurse", "location": "Leeds"},
                  {"job_id": "j-dev", "title": "Software Developer", "location": "Leeds"}])
    q = member_query({"member_id": "m1", "title": "nurse", "location": "leeds."})
    res = index.search([q], k=2)
    assert res.ids[0][0] == "j-nurse"
    assert "title:nurse" in res.reasons[0][0].matched_terms
