"""Serving settings, read once from the environment (HIRESTREAM_SERVING_*)."""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HIRESTREAM_SERVING_", extra="ignore")

    scorer: str = "bm25"  # a `serving.online.scorer.make_scorer` spec: popularity, bm25, ranker:<dir>, vllm:<dir>
    retrieval: str = "hybrid,exact"  # the replica's job index (`index.IndexConfig.parse`)
    retrieve_k: int = Field(100, ge=1, le=2000)
    encoder: str | None = None  # a PLM4Job checkpoint for the replica's dense column (default: hashed terms)

    # The scoring service (serving/online/scoring.py): dynamic batching and its overload policy.
    batch_window_ms: float = Field(2.0, ge=0, le=5000)  # how long a batch waits for more members
    max_batch: int = Field(8, ge=1, le=256)  # members scored in one model call
    queue_max: int = Field(32, ge=0, le=10_000)  # requests admitted and unanswered; beyond it: shed
    degrade_at: int = Field(16, ge=0)  # from this many waiting, rank only `degraded_k` candidates (> queue_max: never)
    degraded_k: int = Field(25, ge=1, le=2000)

    # Where score requests come from: Kafka (`score-requests`), HTTP, or both.
    kafka_requests: bool = True
    kafka_concurrency: int = Field(16, ge=1, le=1024)  # Kafka requests in flight at once (they batch)
    http_port: int = Field(6067, ge=0, le=65535)  # the HTTP API (serving/online/http_api.py); 0: off
    # Loopback unless told otherwise; any other address needs HIRESTREAM_TOKEN, as the
    # worker's read API does (streams.settings).
    http_bind: str = "127.0.0.1"
    http_max_connections: int = Field(256, ge=1)  # uvicorn answers 503 beyond it


@lru_cache(maxsize=1)
def get_serving_settings() -> ServingSettings:
    return ServingSettings()
