"""`hirestream train ...`: train the project's models.

Each model family is one sub-command of this group; heavy imports (torch,
transformers) happen inside the command, so `hirestream --help` stays quick.
"""
from __future__ import annotations

from pathlib import Path

import click


@click.group(name="train")
def command() -> None:
    """Train a model (ranker, encoder) on simulated marketplace interactions."""


@command.command(name="ranker")
@click.option("--model", "model_kind", type=click.Choice(["pruned", "teacher", "student"]), default="pruned",
              show_default=True, help="pruned: SmolLM2-135M-Instruct's first 8 blocks (lower 4 frozen and cached); "
                                      "teacher: all 30 blocks; student: a small Llama from scratch.")
@click.option("--budget-minutes", type=float, default=None, help="Stop after this much training time.")
@click.option("--steps", type=int, default=None, help="Stop after this many optimizer steps.")
@click.option("--epochs", type=int, default=None, help="At most this many passes over the data (default 8).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Checkpoint folder (default artifacts/ranker-<model>).")
@click.option("--members", type=int, default=600, show_default=True, help="Simulated members.")
@click.option("--days", type=int, default=21, show_default=True, help="Simulated days (the last 4 held out).")
@click.option("--threads", type=int, default=None, help="torch threads (default: settings / all cores).")
@click.option("--lr", type=float, default=None, help="Peak learning rate of the trained blocks.")
@click.option("--frozen-blocks", type=int, default=None, help="Lower blocks kept frozen and cached.")
@click.option("--lora-rank", type=int, default=None, help="Train LoRA adapters of this rank (peft) instead of "
                                                            "the upper blocks' full weights.")
@click.option("--tokens-per-step", type=int, default=None,
              help="Padded tokens per optimizer step (default 4096; a GPU wants more).")
@click.option("--curve-points", type=int, default=4, show_default=True,
              help="Learning-curve probes on held-out slates (written to learning_curve.json; 0: none).")
@click.option("--snapshots", is_flag=True, default=False,
              help="Also save a checkpoint at each curve point (<out>/snapshots/), which bench/ranker_quality.py "
                   "scores on the whole held-out set for its learning curve (~350 MB each).")
@click.option("--text-share", type=float, default=None,
              help="Share of simulated members with a wish only their free text states (default: the simulator's).")
@click.option("--career-move-share", type=float, default=None,
              help="Share of applies and hires along career paths (default: the simulator's; 0: none).")
@click.option("--community-strength", type=float, default=None,
              help="Strength of latent communities' tastes (default: the simulator's; 0: none).")
@click.option("--keep-negatives", type=float, default=None,
              help="Share of jobs with no positive label on any task kept for training (default: the recipe's); "
                   "the answer's offset is shifted to undo it.")
@click.option("--prefix-backprop/--no-prefix-backprop", default=None,
              help="Differentiate the member prefix in the trained blocks (default: the recipe's); without, "
                   "jobs read it as a constant and only its keys and values learn (models/trained_blocks.py).")
@click.option("--rows-per-minute", type=int, default=None,
              help="On a CPU time budget, member-day rows read per budget minute (default: the recipe's); "
                   "a cheaper step (more frozen blocks) can read more.")
@click.option("--jobs-alone", is_flag=True, default=False,
              help="Job bodies never read the member (models/job_states.py): serving caches each job's states "
                   "and a request computes only the member prefix and the answer markers.")
def ranker(model_kind, budget_minutes, steps, epochs, seed, out_dir, members, days, threads, lr, frozen_blocks,
           lora_rank, tokens_per_step, curve_points, snapshots, text_share, career_move_share,
           community_strength, keep_negatives, prefix_backprop, rows_per_minute, jobs_alone) -> None:
    """Fine-tune the multi-task Yes/No ranker on replayed simulator events."""
    from serving.training.ranker_pipeline import KEEP_NEGATIVES, train_ranker_on_simulator

    train_ranker_on_simulator(
        model_kind=model_kind, budget_minutes=budget_minutes, steps=steps, seed=seed, out_dir=out_dir,
        n_members=members, days=days, threads=threads, lr=lr, epochs=epochs, lora_rank=lora_rank,
        frozen_blocks=frozen_blocks, tokens_per_step=tokens_per_step, curve_points=curve_points,
        snapshots=snapshots, text_share=text_share,
        career_move_share=career_move_share, community_strength=community_strength,
        keep_negatives=KEEP_NEGATIVES if keep_negatives is None else keep_negatives, jobs_alone=jobs_alone,
        prefix_backprop=prefix_backprop, rows_per_minute=rows_per_minute,
    )


# `train encoder` (the PLM4Job ego-graph encoder) lives in its own module.
from infra.commands.train_encoder import command as _encoder_command  # noqa: E402

command.add_command(_encoder_command)
