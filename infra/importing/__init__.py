"""Bring your own data: a job board's exports -> a validated, event-time-sorted event log.

    mapping = load_mapping("tests/data/jobboard/mapping.toml")   # mapping.py: the declarative file
    report = import_exports(mapping, "day.jsonl")                # convert.py: rows -> events -> log

`readers.py` streams rows out of CSV, JSON Lines (and Parquet, if pyarrow is there)
with the line each row starts on, so every rejected row is reported by file and line.
"""
from infra.importing.convert import ImportReport, import_exports
from infra.importing.mapping import Mapping, load_mapping

__all__ = ["ImportReport", "Mapping", "import_exports", "load_mapping"]
