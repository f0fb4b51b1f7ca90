"""The serving worker's job-state warmer (serving/online/job_state_warmer.py) follows
the catalog: each open job's current entry is computed once, an edit again, and a full
cache stops it. (On a real worker: tests/test_http_api.py, the jobs-alone test.)"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from serving.online.job_state_warmer import JobStateWarmer
from streams.state import CatalogEntry
from tests import factories as f


@dataclass
class Budget:
    bytes: int = 0
    max_bytes: int = 100


def job(job_id: str, title: str = "Nurse"):
    return f.job(job_id=job_id, title=title)


def warmer_over(catalog: dict, budget: Budget | None = None):
    computed: list[list[str]] = []
    return JobStateWarmer(catalog, lambda jobs: computed.append([j.title for j in jobs]) or len(jobs),
                          budget or Budget()), computed


def test_each_open_jobs_entry_is_computed_once_and_an_edit_again():
    catalog = {"a": CatalogEntry(job("a", "Nurse"), True, "e1", 1.0),
               "b": CatalogEntry(job("b", "Welder"), True, "e2", 1.0),
               "c": CatalogEntry(job("c", "Chef"), False, "e3", 1.0)}
    warmer, computed = warmer_over(catalog)
    assert warmer.warm(warmer.pending(limit=1)) == 1
    assert warmer.warm(warmer.pending(limit=10)) == 1
    assert computed == [["Nurse"], ["Welder"]] and warmer.pending(limit=10) == []  # the closed job never
    catalog["a"] = CatalogEntry(job("a", "Head nurse"), True, "e4", 2.0)  # edited: a new entry
    assert [j.title for _, _, j in warmer.pending(limit=10)] == ["Head nurse"]
    assert warmer.figures()["jobs"] == 2


def test_a_cache_near_its_budget_stops_the_warming():
    catalog = {"a": CatalogEntry(job("a"), True, "e1", 1.0)}
    warmer, _ = warmer_over(catalog, Budget(bytes=95, max_bytes=100))
    assert warmer.pending(limit=10) == []
    warmer.states.bytes = 10
    assert len(warmer.pending(limit=10)) == 1


def test_a_job_that_fails_to_compute_is_left_to_its_first_request_not_retried_every_round():
    catalog = {"a": CatalogEntry(job("a"), True, "e1", 1.0)}

    def broken(jobs):
        raise RuntimeError("out of memory")

    warmer = JobStateWarmer(catalog, broken, Budget())
    with pytest.raises(RuntimeError):
        warmer.warm(warmer.pending(limit=10))
    assert warmer.pending(limit=10) == [] and warmer.figures()["jobs"] == 0


def test_after_a_scan_that_found_nothing_the_catalog_is_scanned_again_only_once_written():
    catalog = {"a": CatalogEntry(job("a"), True, "e1", 1.0)}
    applied = [1]
    warmer = JobStateWarmer(catalog, len, Budget(), version=lambda: applied[0])
    warmer.warm(warmer.pending(limit=10))
    assert warmer.pending(limit=10) == []
    catalog["b"] = CatalogEntry(job("b"), True, "e2", 2.0)
    assert warmer.pending(limit=10) == []  # no write counted yet: not scanned
    applied[0] += 1
    assert [job_id for job_id, _, _ in warmer.pending(limit=10)] == ["b"]
