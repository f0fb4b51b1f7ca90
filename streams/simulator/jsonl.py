"""Writing and reading simulator output as JSON Lines: one wire-format envelope a line."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from streams.schemas import Envelope, TOPIC_OF_TYPE, parse, serialize


def write_jsonl(events: Iterable[Envelope], path: str | Path) -> int:
    """Write each event as the exact bytes that go on the wire; return how many."""
    count = 0
    with open(path, "wb", buffering=1 << 20) as f:
        for event in events:
            f.write(serialize(event))
            f.write(b"\n")
            count += 1
    return count


def read_jsonl(path: str | Path) -> Iterator[Envelope]:
    """Parse a file written by `write_jsonl` back into typed events (validating each)."""
    import json

    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            kind = json.loads(line).get("type")
            topic = TOPIC_OF_TYPE.get(kind)
            if topic is None:
                raise ValueError(f"{path}:{n}: unknown event type {kind!r}")
            yield parse(topic, line)
