"""The worker's read API (faust web views): member state, verbalized histories, jobs
and the ingest statistics. `make run`, the tests and the benchmark read state here
instead of opening RocksDB files a running worker holds."""
from __future__ import annotations

from faust.web import Request, Response, View

from streams.app import app, job_catalog, member_state
from streams.ingest_stats import stats


# Answered from this worker's partitions. (faust's @table_route, which forwards to
# the owning worker, fails in faust-streaming 0.15.3 before the changelog topic's
# metadata is cached: aiokafka `partitions_for_topic` returns None.)
@app.page("/members/{member_id}/")
async def member_view(web: View, request: Request, member_id: str) -> Response:
    value = member_state.get(member_id)
    if value is None:
        return web.json({"error": f"unknown member {member_id!r}"}, status=404)
    return web.json(value)


@app.page("/jobs/{job_id}/")
async def job_view(web: View, request: Request, job_id: str) -> Response:
    value = job_catalog.get(job_id)
    if value is None:
        return web.json({"error": f"unknown job {job_id!r}"}, status=404)
    return web.json(value)


@app.page("/stats/")
async def stats_view(web: View, request: Request) -> Response:
    return web.json(stats.snapshot())


@app.page("/stats/reset/")
async def stats_reset_view(web: View, request: Request) -> Response:
    """Start a new measurement window (the ingest benchmark's phases)."""
    stats.reset()
    return web.json(stats.snapshot())
