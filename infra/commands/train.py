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
@click.option("--model", "model_kind", type=click.Choice(["teacher", "pruned", "student"]), default="student",
              show_default=True, help="teacher: SmolLM2-135M-Instruct fine-tuned; pruned: its first 6 blocks, fine-tuned; student: small Llama from scratch.")
@click.option("--budget-minutes", type=float, default=None, help="Stop after this much training time.")
@click.option("--steps", type=int, default=None, help="Stop after this many optimizer steps.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Checkpoint folder (default artifacts/ranker-<model>).")
@click.option("--members", type=int, default=300, show_default=True, help="Simulated members.")
@click.option("--days", type=int, default=21, show_default=True, help="Simulated days (last ones held out).")
@click.option("--threads", type=int, default=None, help="torch threads (default: settings / all cores).")
@click.option("--batch-size", type=int, default=None, help="Training rows per step.")
@click.option("--lr", type=float, default=None, help="Peak learning rate.")
def ranker(model_kind, budget_minutes, steps, seed, out_dir, members, days, threads, batch_size, lr) -> None:
    """Fine-tune the multi-task Yes/No ranker on replayed simulator events."""
    from serving.ranker_pipeline import train_ranker_on_simulator

    train_ranker_on_simulator(
        model_kind=model_kind, budget_minutes=budget_minutes, steps=steps, seed=seed,
        out_dir=out_dir, n_members=members, days=days, threads=threads,
        batch_size=batch_size, lr=lr,
    )


# `train encoder` (the PLM4Job ego-graph encoder) lives in its own module.
from infra.commands.train_encoder import command as _encoder_command  # noqa: E402

command.add_command(_encoder_command)
