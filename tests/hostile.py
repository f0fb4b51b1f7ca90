"""Test helpers for hostile input: reading dead letters back, the worker's memory."""
from __future__ import annotations

from pathlib import Path

from infra.waiting import wait_for


def read_dead_letters(bootstrap: str, topic: str, markers: set[str], timeout: float = 90.0) -> dict[str, dict]:
    """Wait until `<topic>.dlq` holds a record whose value contains each marker; return,
    per marker, that record's headers (decoded) plus its `value_len`."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_partition_fetch_bytes=4 * 1024 * 1024)
    found: dict[str, dict] = {}
    wanted = {m: m.encode() for m in markers}
    try:
        parts = [TopicPartition(f"{topic}.dlq", p) for p in sorted(consumer.partitions_for_topic(f"{topic}.dlq") or ())]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)

        def probe():
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    value = r.value or b""
                    for marker, raw in wanted.items():
                        if raw in value and marker not in found:
                            headers = {k: v.decode(errors="replace") for k, v in r.headers}
                            found[marker] = {**headers, "value_len": len(value)}
            return found if len(found) == len(wanted) else None
        try:
            wait_for(probe, timeout, f"dead letters on {topic}.dlq")
        except TimeoutError as err:
            raise TimeoutError(f"{err}; never dead-lettered: {sorted(set(wanted) - set(found))}") from None
    finally:
        consumer.close()
    return found


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")
