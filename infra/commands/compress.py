"""`hirestream compress`: a smaller ranker from a trained one (distil, prune, re-distil, quantize)."""
from __future__ import annotations

from pathlib import Path

import click


@click.command(name="compress")
@click.option("--teacher", "teacher", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="A checkpoint written by `hirestream train ranker`.")
@click.option("--recipe", type=click.Choice(["sft", "distil", "prune-oneshot", "prune-gradual",
                                           "trim-vocab", "bf16", "int8", "int8-weight", "int4-weight"]),
              required=True,
              help="sft / distil: the teacher's first --layers blocks, trained on hard labels only / mixed with "
                   "the teacher's answers; prune-*: the whole teacher cut by calibrated importance to the shape below "
                   "at once / in --gradual-steps cuts, each re-distilled; trim-vocab: --teacher's embedding and LM head "
                   "cut to the token ids its prompts use; bf16 / int8 / int8-weight / int4-weight: --teacher itself "
                   "(any trained checkpoint) quantized. The last five train nothing.")
@click.option("--budget-minutes", type=float, default=20.0, show_default=True, help="Training time in all.")
@click.option("--steps", type=int, default=None, help="Optimizer steps in all instead of the time budget.")
@click.option("--layers", type=int, default=4, show_default=True, help="sft / distil: the student's depth.")
@click.option("--intermediate-size", type=int, default=None, help="prune-*: MLP neurons each block keeps (with no shape option: 640 and 2 "
                                                                "key/value groups, about half of each block).")
@click.option("--kv-groups", type=int, default=None, help="prune-*: key/value head groups each block keeps.")
@click.option("--heads-per-group", type=int, default=None, help="prune-*: query heads each group keeps.")
@click.option("--prune-layers", type=int, default=None, help="prune-*: decoder blocks kept.")
@click.option("--gradual-steps", type=int, default=3, show_default=True)
@click.option("--distil-weight", type=float, default=0.5, show_default=True,
              help="Share of the loss on the teacher's answers (sft: 0).")
@click.option("--temperature", type=float, default=2.0, show_default=True)
@click.option("--frozen-blocks", type=int, default=None,
              help="Lower blocks kept frozen and cached (default: sft/distil half the student's, prune-* none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=None, help="torch threads (default: all cores).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Checkpoint folder (default artifacts/ranker-<recipe>).")
def command(teacher, recipe, budget_minutes, steps, layers, intermediate_size, kv_groups, heads_per_group, prune_layers,
            gradual_steps, distil_weight, temperature, frozen_blocks, seed, threads, out_dir) -> None:
    """Distil, prune, re-distil or quantize a trained ranker into a smaller one, with its model card."""
    from models.pruning import PruneShape
    from models.quantization import RECIPES as QUANTIZED
    from serving.training.compression import HALF, CompressRecipe, compress, quantize_checkpoint, trim_checkpoint
    from streams.settings import get_settings

    artifacts = get_settings().artifacts_dir
    if recipe == "trim-vocab":
        trim_checkpoint(teacher, out_dir or artifacts / "ranker-trim-vocab")
        return
    if recipe in QUANTIZED:
        if threads:
            import torch

            torch.set_num_threads(threads)
        quantize_checkpoint(teacher, recipe, out_dir or artifacts / f"ranker-{recipe}")
        return
    asked = PruneShape(intermediate_size=intermediate_size, kv_groups=kv_groups, heads_per_group=heads_per_group,
                       layers=prune_layers)
    shape = asked if asked.describe() else HALF
    plan = CompressRecipe(recipe, budget_minutes=budget_minutes, steps=steps, layers=layers, shape=shape,
                          gradual_steps=gradual_steps, distil_weight=distil_weight, temperature=temperature,
                          frozen_blocks=frozen_blocks, seed=seed, threads=threads)
    compress(teacher, plan, out_dir or artifacts / f"ranker-{recipe}", cache_dir=artifacts / "cache")
