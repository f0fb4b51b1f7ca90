"""The teacher's answers for distillation, computed once and kept on disk.

A student learns from the teacher's Yes/No distribution at every answer position of
its training rows (forward KL, temperature-scaled: `ranker_training.batch_loss`),
mixed with the hard labels. The teacher's logits (logit(Yes) - logit(No) with its
`answer_offset`, the log-odds its scores are the sigmoid of) cost one forward pass
of the teacher per row; they are cached under a key of the teacher's weights and the
rows' text, so every student of a recipe, and every rerun, reads them back.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from infra.terminal import PLAIN_PROGRESS_S, PlainTicker
from models.multi_item import answer_logits
from models.ranker import Ranker


def teacher_logits(teacher: Ranker, rows: Sequence, tokens_per_batch: int = 4096,
                   progress: bool = True) -> list[list[list[float]]]:
    """For each training row (`ranker_training.TrainRow`), the teacher's log-odds of
    Yes per job and task, [job][task], on its own scale (`answer_offset` added)."""
    from models.ranker_training import bucket_batches, encode_rows

    encoded = encode_rows(teacher, rows, {})
    out: list[list[list[float]] | None] = [None] * len(rows)
    model = teacher.model.eval()
    batches = bucket_batches(encoded, tokens_per_batch)
    bar = tqdm(batches, desc="teacher logits", unit="batch", disable=None if progress else True, mininterval=5)
    # Piped (CI logs, `| tee`) the bar is off: minutes of teacher passes say where they are.
    plain, began = PlainTicker(progress and bar.disable, PLAIN_PROGRESS_S), time.perf_counter()
    with torch.no_grad():
        for done, batch in enumerate(bar, 1):
            packed = teacher.pack([(encoded[i].prefix, encoded[i].bodies, encoded[i].markers) for i in batch])
            logits = answer_logits(model, packed, teacher.yes_id, teacher.no_id).float()
            diff = (logits[:, 0] - logits[:, 1] + teacher.answer_offset).tolist()
            at = 0
            for i in batch:
                jobs, tasks = len(rows[i].segments), len(rows[i].tasks)
                flat = diff[at:at + jobs * tasks]
                out[i] = [flat[j * tasks:(j + 1) * tasks] for j in range(jobs)]
                at += jobs * tasks
            if plain.due():
                print(f"teacher logits: {done}/{len(batches)} batches, {(time.perf_counter() - began) / 60:.1f} min",
                      flush=True)
    return out  # type: ignore[return-value]


def checkpoint_digest(path: Path | str) -> str:
    """What identifies a checkpoint's answers: its weights and its ranker.json."""
    h = hashlib.sha256()
    for name in ("model.safetensors", "ranker.json"):
        with open(Path(path) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def rows_digest(rows: Sequence) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r.prefix, r.segments, r.tasks, r.phrasing]).encode())
    return h.hexdigest()


def cached_teacher_logits(teacher_path: Path | str, rows: Sequence, cache_dir: Path | str,
                          progress: bool = True) -> tuple[list[list[list[float]]], Path, bool]:
    """`teacher_logits` of the checkpoint at `teacher_path` for `rows`, read from
    `cache_dir` when this teacher already answered these rows. Returns the logits,
    the cache file and whether it was read (True) or computed (False)."""
    key = hashlib.sha256((checkpoint_digest(teacher_path) + rows_digest(rows)).encode()).hexdigest()[:20]
    cache = Path(cache_dir) / f"teacher-logits-{key}.json"
    if cache.exists():
        return json.loads(cache.read_text()), cache, True
    logits = teacher_logits(Ranker.load(teacher_path), rows, progress=progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(logits))
    tmp.replace(cache)  # a crash mid-write never leaves a half file under the real name
    return logits, cache, False
