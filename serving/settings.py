"""Serving settings, read once from the environment (HIRESTREAM_SERVING_*)."""
from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HIRESTREAM_SERVING_", extra="ignore")

    scorer: str = "bm25"  # a `serving.scorer.make_scorer` spec: popularity, bm25, ranker:<dir>, vllm:<dir>
    retrieval: str = "hybrid,exact"  # the replica's job index (`index.IndexConfig.parse`)
    retrieve_k: int = 100
    encoder: str | None = None  # a PLM4Job checkpoint for the replica's dense column (default: hashed terms)


@lru_cache(maxsize=1)
def get_serving_settings() -> ServingSettings:
    return ServingSettings()
