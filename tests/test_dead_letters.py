"""The dead letter of a message always fits one produce request (`streams.dead_letters`)."""
from __future__ import annotations

from types import SimpleNamespace

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from streams.dead_letters import dead_letter_record

LIMIT = 1_000_000


def message(key: bytes | None, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(key=key, value=value, topic="member-actions", partition=2, offset=41)


def test_a_small_dead_letter_keeps_its_bytes_and_says_where_it_came_from():
    key, value, headers = dead_letter_record(message(b"m1", b"{not json"), "Invalid JSON", LIMIT)
    assert (key, value) == (b"m1", b"{not json")
    assert dict(headers) == {"error": b"Invalid JSON", "source_topic": b"member-actions",
                             "source_partition": b"2", "source_offset": b"41"}


def test_an_oversized_value_is_cut_to_fit_and_its_size_kept():
    original = b"x" * 1_500_000
    key, value, headers = dead_letter_record(message(b"m1", original), "too big", LIMIT)
    assert DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers) <= LIMIT
    assert key == b"m1" and original.startswith(value) and len(value) > LIMIT // 2
    assert dict(headers)["original_value_size"] == b"1500000"


def test_an_oversized_key_is_cut_too():
    key, value, headers = dead_letter_record(message(b"k" * 2_000_000, b"v" * 10), "bad key", LIMIT)
    assert DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers) <= LIMIT
    assert dict(headers)["original_key_size"] == b"2000000"
