"""`hirestream train encoder`: train the PLM4Job ego-graph encoder on simulated events.

Registered on the `train` group in `infra/commands/train.py`. Heavy imports happen
inside the command so `hirestream --help` stays quick.
"""
from __future__ import annotations

from pathlib import Path

import click


@click.command(name="encoder")
@click.option("--budget-minutes", type=float, default=5.0, show_default=True,
              help="Stop training after this much time (whichever of this and --steps comes first).")
# 200 steps: the best of 50-400 on the tuning marketplace at the default size
# (bench/encoder_ablation.py --only 4 --no-held-out --steps N: recall@100 0.654 / 0.694 /
# 0.695 / 0.681, and 0.648 at 1,000); judged once on the held-out one, 0.646 against 0.582
# at 1,000 steps. The default was 2,000 steps or 5 minutes (~1,450 steps on 2 cores): past
# the point where the encoder overfits its few thousand links (docs/graph-signals.md).
@click.option("--steps", type=int, default=200, show_default=True, help="Stop after this many optimizer steps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds weights, batches and dropout.")
@click.option("--data-seed", type=int, default=7, show_default=True, help="Simulator seed.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("artifacts/encoder"),
              show_default=True, help="Checkpoint folder (save_pretrained + tokenizer + model card).")
@click.option("--members", type=int, default=10_000, show_default=True, help="Simulated members.")
@click.option("--jobs", type=int, default=3000, show_default=True, help="Simulated open jobs.")
@click.option("--companies", type=int, default=150, show_default=True, help="Simulated companies.")
@click.option("--days", type=int, default=21, show_default=True, help="Simulated days.")
@click.option("--train-days", type=int, default=15, show_default=True,
              help="Applies/hires before this day train; later ones are held out for recall@k.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--device", default="auto", show_default=True, help="auto = cuda when present, else cpu.")
@click.option("--type-embeddings/--no-type-embeddings", default=True, show_default=True)
@click.option("--position-embeddings/--no-position-embeddings", default=True, show_default=True,
              help="Graph-positional (hop distance) embeddings.")
@click.option("--attention-alignment/--no-attention-alignment", default=True, show_default=True)
@click.option("--quick", is_flag=True, help="A small marketplace and a 1-minute budget (smoke run).")
def command(budget_minutes, steps, seed, data_seed, out_dir, members, jobs, companies, days, train_days,
            batch_size, lr, threads, device, type_embeddings, position_embeddings, attention_alignment,
            quick) -> None:
    """Train the PLM4Job encoder (link prediction on applies + hires) and save a checkpoint."""
    import torch
    from infra.terminal import console as make_console
    from rich.table import Table

    from models.encoder_training import PromptSpec, TrainConfig
    from serving.training.encoder_run import DataConfig, ModelShape, train_encoder_on_simulator

    console = make_console()
    if threads:
        torch.set_num_threads(threads)
    data = DataConfig(seed=data_seed, n_members=members, n_companies=companies, n_jobs=jobs,
                      days=days, train_days=train_days)
    if quick:
        data = DataConfig.quick(seed=data_seed)
        budget_minutes = min(budget_minutes, 1.0)
    train_cfg = TrainConfig(max_steps=steps, time_budget_s=budget_minutes * 60, batch_size=batch_size,
                            lr=lr, seed=seed, device=device)
    switches = dict(use_type_embeddings=type_embeddings, use_position_embeddings=position_embeddings,
                    use_attention_alignment=attention_alignment)
    path, summary = train_encoder_on_simulator(
        data=data, shape=ModelShape(), spec=PromptSpec(), train_cfg=train_cfg, out_dir=out_dir,
        switches=switches, log=console.print,
    )
    table = Table(title=f"PLM4Job encoder -> {path}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in summary["metrics"].items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    t = summary["training"]
    table.add_row("steps / seconds", f"{t['steps']} / {t['seconds']}")
    table.add_row("loss first→last", f"{t['first_loss']:.3f} → {t['final_loss']:.3f}")
    console.print(table)
