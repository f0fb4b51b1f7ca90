"""Serving settings, read once from the environment (HIRESTREAM_SERVING_*) or `.env`
(see streams.settings; `hirestream settings doc` writes docs/SETTINGS.md from them)."""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings import HirestreamSettings


class ServingSettings(HirestreamSettings):
    """The scoring service (`hirestream serve`): retrieval, ranking, batching, its APIs."""

    model_config = SettingsConfigDict(env_prefix="HIRESTREAM_SERVING_", extra="ignore")

    scorer: str = Field("bm25", description="A `serving.online.scorer.make_scorer` spec: "
                                            "`popularity`, `bm25`, `ranker:<dir>`, `vllm:<dir>`.")
    retrieval: str = Field("hybrid,exact", description="The replica's job index "
                                                       "(`index.IndexConfig.parse`).")
    retrieve_k: int = Field(100, ge=1, le=2000, description="Candidate jobs retrieved per "
                                                            "member before ranking.")
    encoder: str | None = Field(None, description="A PLM4Job checkpoint for the replica's dense "
                                                  "column; unset: hashed terms.")
    job_state_mb: int = Field(1024, ge=1, description="Memory a ranker that reads jobs alone may keep "
                                                      "its jobs' cached states in "
                                                      "(models/job_states.py); the least recently "
                                                      "used beyond it are recomputed when next asked.")
    model_owns_cores: bool = Field(False, description="Torch on every CPU for the model thread alone, "
                                                      "one thread elsewhere (models/torch_threads.py). "
                                                      "On 2 cores shared with the broker: more capacity, "
                                                      "Kafka's p99 no lower "
                                                      "(docs/serving-measurements.md).")

    # The scoring service (serving/online/scoring.py): dynamic batching and its overload policy.
    batch_window_ms: float = Field(2.0, ge=0, le=5000, description="Milliseconds a batch waits "
                                                                   "for more members.")
    max_batch: int = Field(8, ge=1, le=256, description="Members scored in one model call.")
    queue_max: int = Field(32, ge=0, le=10_000, description="Requests admitted and unanswered; "
                                                            "beyond it new ones are shed.")
    degrade_at: int = Field(16, ge=0, description="From this many requests waiting, rank only "
                                                  "`degraded_k` candidates (above queue_max: never).")
    degraded_k: int = Field(25, ge=1, le=2000, description="Candidates ranked per member while "
                                                           "degraded.")

    # Where score requests come from: Kafka (`score-requests`), HTTP, or both.
    kafka_requests: bool = Field(True, description="Answer score requests from the "
                                                   "`score-requests` topic.")
    kafka_concurrency: int = Field(16, ge=1, le=1024, description="Kafka requests in flight at "
                                                                  "once (they batch together).")
    http_port: int = Field(6067, ge=0, le=65535, description="Port of the HTTP API "
                                                             "(serving/online/http_api.py); 0: off.")
    http_bind: str = Field("127.0.0.1", description="Address the HTTP API listens on: loopback "
                                                    "unless told otherwise; any other address "
                                                    "needs HIRESTREAM_TOKEN, as the worker's "
                                                    "read API does.")
    http_max_connections: int = Field(256, ge=1, description="Open connections uvicorn accepts; "
                                                             "beyond it it answers 503.")


@lru_cache(maxsize=1)
def get_serving_settings() -> ServingSettings:
    return ServingSettings()
