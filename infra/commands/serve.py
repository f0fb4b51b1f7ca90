"""`hirestream serve`: the stream worker plus the scoring agent (score-requests -> score-results)."""
from __future__ import annotations

import click


@click.command("serve")
@click.option("--loglevel", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def command(loglevel: str) -> None:
    """Run the stream worker's agents and tables and answer score requests, from Kafka
    (score-requests -> score-results) and over HTTP (POST /v1/rank, /v1/score,
    /readyz, /metrics, docs at /docs) on HIRESTREAM_SERVING_HTTP_PORT (6067; 0: off).

    Scorer and retrieval come from HIRESTREAM_SERVING_SCORER (popularity, bm25,
    ranker:<dir>) and HIRESTREAM_SERVING_RETRIEVAL ('hybrid,exact'); the job index is a
    replica bootstrapped at start from the job-catalog changelog and the compacted
    members topic, then hires and member-actions (serving/online/replica.py); requests wait
    until it has caught up. Batching and overload: HIRESTREAM_SERVING_BATCH_WINDOW_MS,
    _MAX_BATCH, _QUEUE_MAX, _DEGRADE_AT, _DEGRADED_K (serving/online/scoring.py states the
    policy). Replica state: http://127.0.0.1:<web_port>/serving/.
    """
    from models.torch_threads import reserve_cores_for_model_thread
    from serving.online.settings import get_serving_settings

    if get_serving_settings().model_owns_cores:
        reserve_cores_for_model_thread()  # before anything imports torch: libgomp reads it once
    from faust.worker import Worker

    from streams.kafka_clients import check_access
    from streams.settings import get_settings

    check_access(get_settings().bootstrap)  # refused credentials: a clear error, not aiokafka's retries
    from serving.online.scoring_agent import register_serving
    from streams.app import app, register_agents

    register_agents()
    register_serving()
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
