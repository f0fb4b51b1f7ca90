"""Making a trained ranker small (issue 16): distil, prune and re-distil.

    hirestream compress --teacher artifacts/ranker-thin --recipe distil --layers 4 --budget-minutes 20

Every recipe starts the student from the teacher's own weights (the paper's students
are pruned teachers) and trains it on the teacher's marketplace, the same training
days its ranker.json names, with the same prompts:

  * `sft`: the teacher's first `layers` blocks, hard labels only (the reference a
    distilled student must beat);
  * `distil`: the same student, the loss mixed with the forward KL to the teacher's
    Yes/No at every answer (`ranker_training.distillation_loss`);
  * `prune-oneshot`: the whole teacher cut to `shape` at once by calibrated
    importance (`models.pruning`), then re-distilled;
  * `prune-gradual`: the same shape reached in `gradual_steps` smaller cuts, each
    re-distilled (360Brew found gradual better).

The teacher's answers are computed once per (teacher, rows) and cached on disk
(`models.distillation`). Each student is saved as a plain checkpoint (`Ranker.load`,
transformers, vLLM) with a model card: parameters, bytes on disk, recipe, teacher,
minutes of training.

The quantization recipes (`models.quantization.RECIPES`: bf16, int8, int8-weight,
int4-weight) train nothing: `quantize_checkpoint` stores any trained checkpoint's
weights in fewer bits, for `Ranker.load` (and so the in-process scorer) to read.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from models.pruning import PruneShape, measure_importance, n_block_parameters, prune, shape_of
from models.ranker import Ranker, keep_first_layers, n_parameters
from models.ranker_training import TrainConfig, TrainReport, TrainRow, encode_rows, model_card, train
from serving.training.ranker_pipeline import (
    KEEP_NEGATIVES,
    PRESETS,
    TASKS,
    PromptCache,
    negative_log_keep,
    rows_readable_in,
    simulated_split,
    training_rows,
)

RECIPES = ("sft", "distil", "prune-oneshot", "prune-gradual")
# About half of every block's parameters: MLP 1,536 -> 640 neurons, 3 -> 2 key/value
# groups (SmolLM2-135M's block: 3.54M -> 1.69M parameters).
HALF = PruneShape(intermediate_size=640, kv_groups=2)


@dataclass
class CompressRecipe:
    recipe: str
    budget_minutes: float = 20.0  # training time in all (a gradual recipe splits it over its steps)
    steps: int | None = None  # optimizer steps in all instead (reproducible; the rows still sized by the budget)
    layers: int = 4  # sft / distil: the student keeps the teacher's first `layers` blocks
    shape: PruneShape = field(default_factory=lambda: HALF)  # prune-*: what every block keeps
    gradual_steps: int = 3
    distil_weight: float = 0.5  # share of the loss on the teacher's answers (sft: 0)
    temperature: float = 2.0
    frozen_blocks: int | None = None  # default: sft/distil the lower half, prune-* none (every block was cut)
    calibration_rows: int = 16  # member-days of up to 24 jobs each: ~30k tokens
    seed: int = 0
    threads: int | None = None
    keep_negatives: float = KEEP_NEGATIVES

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}: one of {', '.join(RECIPES)}")
        if self.recipe == "sft":
            self.distil_weight = 0.0
        if not 0 <= self.distil_weight <= 1:
            raise ValueError(f"distil_weight must be in [0, 1], got {self.distil_weight}")

    @property
    def pruned(self) -> bool:
        return self.recipe.startswith("prune")

    def frozen(self, student_layers: int) -> int:
        if self.frozen_blocks is not None:
            return self.frozen_blocks
        return 0 if self.pruned else student_layers // 2


def teacher_split(teacher_meta: dict, progress: bool = True):
    """The teacher's marketplace, as its ranker.json records it."""
    missing = [k for k in ("sim_members", "sim_days", "sim_seeds") if k not in teacher_meta]
    if missing:
        raise ValueError(f"the teacher's ranker.json does not say which marketplace it trained on (no {missing}); "
                         "compress a checkpoint written by `hirestream train ranker`")
    return simulated_split(n_members=teacher_meta["sim_members"], days=teacher_meta["sim_days"],
                           seed=teacher_meta["sim_seeds"][0], progress=progress,
                           text_share=teacher_meta.get("sim_text_share"),
                           career_move_share=teacher_meta.get("sim_career_move_share", 0.0),
                           community_strength=teacher_meta.get("sim_community_strength", 0.0))


def gradual_shapes(full: dict, target: PruneShape, steps: int) -> list[PruneShape]:
    """`steps` shapes from the full model's down to `target`, each dimension cut by
    the same factor per step (the last one exactly `target`)."""
    pairs = {"intermediate_size": full["intermediate_size"], "kv_groups": full["num_key_value_heads"],
             "heads_per_group": full["num_attention_heads"] // full["num_key_value_heads"],
             "layers": full["num_hidden_layers"]}
    out = []
    for k in range(1, steps + 1):
        dims = {}
        for name, have in pairs.items():
            want = getattr(target, name)
            if want is not None:
                dims[name] = max(want, round(have * (want / have) ** (k / steps)))
        out.append(PruneShape(**dims))
    return out


def calibration(student: Ranker, rows: Sequence[TrainRow], n: int) -> list[list[tuple]]:
    """The first `n` training rows as packed-row tuples (tokenized as training does), in
    batches of 4."""
    picked = [(r.prefix, r.bodies, r.markers) for r in encode_rows(student, rows[:n], {})]
    return [picked[i:i + 4] for i in range(0, len(picked), 4)]


def compress(teacher_path: Path | str, recipe: CompressRecipe, out_dir: Path | str, cache_dir: Path | str,
             progress: bool = True) -> tuple[Ranker, Path]:
    """Make, train and save one student of the teacher at `teacher_path`."""
    from models.distillation import cached_teacher_logits

    t0 = time.perf_counter()
    teacher_meta = Ranker.read_meta(teacher_path)
    split = teacher_split(teacher_meta, progress)
    student = Ranker.load(teacher_path)
    teacher_params, teacher_shape = n_parameters(student.model), shape_of(student.model.config)
    rows = training_rows(split.train, PromptCache(student), seed=recipe.seed,
                         max_groups=rows_readable_in(recipe.budget_minutes), keep_negatives=recipe.keep_negatives)
    shift = negative_log_keep(rows, recipe.keep_negatives)
    teacher_note = "not used (hard labels only)"
    if recipe.distil_weight > 0:
        logits, cache, read = cached_teacher_logits(teacher_path, rows, cache_dir, progress)
        rows = [replace(r, teacher=t) for r, t in zip(rows, logits)]
        teacher_note = f"{cache.name} ({'read from cache' if read else 'computed'})"
    print(f"compress {recipe.recipe}: {len(rows)} rows; teacher answers {teacher_note}; "
          f"prepared in {time.perf_counter() - t0:.0f} s")

    if recipe.recipe == "prune-gradual":
        stages = gradual_shapes(teacher_shape, recipe.shape, recipe.gradual_steps)
    elif recipe.pruned:
        stages = [recipe.shape]
    else:
        keep_first_layers(student.model, recipe.layers)
        student.meta["kept_layers"] = recipe.layers
        stages = [None]
    reports: list[TrainReport] = []
    for shape in stages:
        if shape is not None:
            importance = measure_importance(student.model, calibration(student, rows, recipe.calibration_rows),
                                            pad_id=student.tokenizer.pad_token_id, blocks=shape.layers is not None,
                                            body_position=student.body_position)
            prune(student.model, importance, shape)
            print(f"  pruned to {shape_of(student.model.config)}: {n_block_parameters(student.model):,} block parameters")
        preset = PRESETS["pruned"]
        cfg = TrainConfig(budget_minutes=None if recipe.steps else recipe.budget_minutes / len(stages),
                          steps=recipe.steps and max(1, recipe.steps // len(stages)), epochs=1000, seed=recipe.seed,
                          threads=recipe.threads, frozen_blocks=recipe.frozen(len(student.model.model.layers)),
                          lr=preset["lr"], head_lr=preset["head_lr"], answer_shift=shift,
                          distil_weight=recipe.distil_weight, distil_temperature=recipe.temperature,
                          progress=progress)
        reports.append(train(student, rows, cfg))
    return student, save_student(student, recipe, teacher_path, teacher_params, reports, split.description,
                                 Path(out_dir))


def calibrator(ranker: Ranker, source: Path | str, n_rows: int = 16, seed: int = 0):
    """A function that runs `n_rows` of the source's own training prompts (its
    marketplace's member-days, tokenized as training does) through a model."""
    from models.multi_item import answer_states

    split = teacher_split(Ranker.read_meta(source), progress=False)
    rows = training_rows(split.train, PromptCache(ranker), seed=seed, max_groups=n_rows)
    batches = calibration(ranker, rows, n_rows)

    def run(model) -> None:
        for batch in batches:
            answer_states(model, ranker.pack(batch))

    return run


def quantize_checkpoint(source: Path | str, recipe: str, out: Path | str) -> Path:
    """The checkpoint at `source` with its decoder blocks quantized by `recipe`, in a
    folder of its own with a model card (no training)."""
    from models.quantization import RECIPES as QUANT, bytes_on_disk, compute_dtype, n_weights, quantize

    t0 = time.perf_counter()
    ranker = Ranker.load(source, device="cpu")
    float_mb = bytes_on_disk(source) / 1e6
    dtype = compute_dtype()
    quantize(ranker.model, recipe, dtype, calibrate=calibrator(ranker, source) if recipe == "int8" else None)
    ranker.meta.update({"quantization": recipe, "model_kind": f"quantized:{recipe}", "quantized_from": str(source),
                        "compute_dtype": str(dtype).removeprefix("torch.")})
    out = Path(out)
    ranker.save(out)
    mb = bytes_on_disk(out) / 1e6
    params = n_weights(ranker.model)
    (out / "README.md").write_text(f"""# ranker-{recipe}

The ranker at `{source}` with its weights quantized, no training: {QUANT[recipe].summary}.
Embeddings, norms and the LM head are kept in floating point ({ranker.meta["compute_dtype"]}); the
Yes/No logits are computed in float32. Prompts, tasks and `answer_offset` are the
source's (see its card).

- weights on disk: {mb:.0f} MB ({mb / float_mb:.2f} of the source's {float_mb:.0f} MB), `quantized.pt`
- parameters: {params:,}, as many as the source's
- quantized in {time.perf_counter() - t0:.1f} s

## Use

    from models.ranker import Ranker
    ranker = Ranker.load("<this folder>")   # reads ranker.json's "quantization"

Not a plain `transformers` or vLLM checkpoint: those read the source's float weights.
Quality and speed beside the source's: `python bench/compression.py`.
""")
    print(f"saved {out}: {recipe}, {mb:.0f} MB of weights ({mb / float_mb:.2f} of {float_mb:.0f} MB), "
          f"{time.perf_counter() - t0:.1f} s")
    return out


def prompt_token_ids(ranker: Ranker) -> set[int]:
    """Every token id a trained ranker's prompts use: its marketplace's training
    member-days as training encodes them, and every instruction and question phrasing
    (held-out ones included)."""
    from models.verbalizer import HELD_OUT_TASKS, INSTRUCTIONS, TASK_QUESTIONS, answer_marker
    from models.prompting import with_instruction

    split = teacher_split(ranker.meta, progress=False)
    rows = training_rows(split.train, PromptCache(ranker))
    used = {i for r in encode_rows(ranker, rows, {})
            for ids in (r.prefix, *r.bodies, *r.markers) for i in ids}
    for phrasing in range(len(INSTRUCTIONS)):
        used.update(ranker.encode_prefix(with_instruction("", phrasing)))
    for task, phrasings in {**TASK_QUESTIONS, **HELD_OUT_TASKS}.items():
        for phrasing in range(len(phrasings)):
            used.update(ranker.encode_text(answer_marker(task, phrasing)))
    return used | {ranker.yes_id, ranker.no_id}


def trim_checkpoint(source: Path | str, out: Path | str) -> Path:
    """The checkpoint at `source` with its embedding and LM head cut to the token ids its
    prompts use (`models.vocabulary`), in a folder of its own with a model card (no
    training; quantize the result, not the other way round)."""
    from models.quantization import bytes_on_disk

    t0 = time.perf_counter()
    ranker = Ranker.load(source, device="cpu")
    if ranker.meta.get("quantization") or ranker.vocabulary is not None:
        raise ValueError(f"{source} is already {'quantized' if ranker.meta.get('quantization') else 'trimmed'}: "
                         "trim a float checkpoint (then quantize it)")
    before = n_parameters(ranker.model)
    ranker.trim_vocabulary(prompt_token_ids(ranker))
    vocab = ranker.vocabulary
    ranker.meta.update({"model_kind": "trimmed-vocabulary", "trimmed_from": str(source)})
    after = n_parameters(ranker.model)
    out = Path(out)
    ranker.save(out)
    mb = bytes_on_disk(out) / 1e6
    (out / "README.md").write_text(f"""# ranker-trim-vocab

The ranker at `{source}` with its input embedding and LM head cut to {len(vocab):,} of the
tokenizer's {len(ranker.tokenizer):,} ids, no training: the ids its prompts use (its
training member-days, every instruction and question phrasing, " Yes"/" No") and every id
no BPE merge produces (bytes, special tokens), so any text still encodes; a word
outside them is spelled by smaller kept tokens (`models.vocabulary`).

- parameters: {after:,} ({after / before:.2f} of the source's {before:,})
- weights on disk: {mb:.0f} MB
- trimmed in {time.perf_counter() - t0:.1f} s

## Use

    from models.ranker import Ranker
    ranker = Ranker.load("<this folder>")   # reads ranker.json's "vocabulary"

A plain causal LM of {len(vocab):,} ids for `transformers`; its token ids are the
tokenizer's renumbered by ranker.json's "vocabulary" (id i of the model is the
tokenizer's vocabulary[i]), so read it through `Ranker`, not the tokenizer alone.
Quality and speed beside the source's: `python bench/compression.py`.
""")
    print(f"saved {out}: {len(vocab):,} token ids, {after:,} parameters ({after / before:.2f} of {before:,}), "
          f"{mb:.0f} MB, {time.perf_counter() - t0:.1f} s")
    return out


def save_student(student: Ranker, recipe: CompressRecipe, teacher_path: Path | str, teacher_params: int,
                 reports: Sequence[TrainReport], data: str, out: Path) -> Path:
    last = reports[-1]
    minutes = sum(r.seconds for r in reports) / 60
    params = n_parameters(student.model)
    weights_mb = sum(t.numel() * t.element_size() for t in student.model.state_dict().values()) / 1e6
    card_recipe = {"recipe": recipe.recipe, "teacher": str(teacher_path),
                   "shape": shape_of(student.model.config),
                   "parameters": f"{params:,} ({params / teacher_params:.2f} of the teacher's {teacher_params:,}); "
                                 f"{n_block_parameters(student.model):,} in the decoder blocks",
                   "weights on disk": f"{weights_mb:.0f} MB ({next(student.model.parameters()).dtype})",
                   "distillation": f"weight {recipe.distil_weight:g}, temperature {recipe.temperature:g}"
                                   if recipe.distil_weight else "none (hard labels only)",
                   "training minutes (all stages)": f"{minutes:.1f} in {len(reports)} stage(s)",
                   "frozen blocks (cached)": recipe.frozen(len(student.model.model.layers)),
                   "all-negative jobs kept": f"{recipe.keep_negatives:g}"}
    if recipe.pruned:
        card_recipe["pruned to"] = recipe.shape.describe()
    student.meta.update({"model_kind": f"compressed:{recipe.recipe}", "teacher": str(teacher_path),
                         "train_steps": sum(r.steps for r in reports),
                         "train_labels": sum(r.labels for r in reports),
                         "train_candidates": sum(r.candidates for r in reports),
                         "train_seconds": round(minutes * 60, 1),
                         "compression": {k: str(v) for k, v in card_recipe.items()}})
    card = model_card(f"ranker-{recipe.recipe}", f"compressed from {teacher_path}", TASKS, data, last, card_recipe,
                      "Quality and speed beside the teacher's: `python bench/ranker_quality.py --ranker <this "
                      "folder>`.")
    student.save(out, card)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"saved {out}: {params:,} parameters, {size / 1e6:.0f} MB on disk with the tokenizer, "
          f"{minutes:.1f} min of training")
    return out
