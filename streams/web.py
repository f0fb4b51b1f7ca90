"""The worker's read API (faust web views): member state, verbalized histories, jobs
and the ingest statistics. `make run`, the tests and the benchmark read state here
instead of opening RocksDB files a running worker holds.

A member read is answered by the worker that owns the member's partition, whichever
worker it arrives at: forwarded there, or served from a standby copy, and the
response headers say which (streams.member_reads). Jobs and companies are global
tables: every worker holds all of them and answers itself.

Safe by default (streams.web_auth): loopback only unless HIRESTREAM_WEB_BIND says
otherwise; with HIRESTREAM_TOKEN every view but /health/ needs the token; faust's
table-dump and router views are off (streams.app); no GET changes state."""
from __future__ import annotations

import asyncio

from faust.web import Request, Response, View

from streams.app import app, companies, job_catalog, member_state, settings
from streams.ingest_stats import stats
from streams.member_reads import read_member
from streams.web_auth import guard

guard(app.web.web_app, settings.token.get_secret_value() if settings.token else None)


@app.page("/health/")
async def health_view(web: View, request: Request) -> Response:
    """Liveness, open without the token: says nothing about members or internals."""
    return web.json({"status": "ok"})


def _entry(web: View, table, kind: str, key: str) -> Response:
    value = table.get(key)
    if value is None:
        return web.json({"error": f"unknown {kind} {key!r}"}, status=404)
    return web.json(value)


@app.page("/members/{member_id}/")
async def member_view(web: View, request: Request, member_id: str) -> Response:
    return await read_member(web, request, member_id)


@app.page("/jobs/{job_id}/")
async def job_view(web: View, request: Request, job_id: str) -> Response:
    return _entry(web, job_catalog, "job", job_id)


@app.page("/companies/{company_id}/")
async def company_view(web: View, request: Request, company_id: str) -> Response:
    return _entry(web, companies, "company", company_id)


@app.page("/stats/")
async def stats_view(web: View, request: Request) -> Response:
    return web.json(stats.snapshot())


@app.page("/stats/reset/")
class StatsResetView(View):
    """Start a new measurement window (the ingest benchmark's phases). POST only: a
    GET must never change state (a crawler, a prefetch or a curious curl would)."""

    async def post(self, request: Request) -> Response:
        stats.reset()
        return self.json(stats.snapshot())


@app.page("/debug/tasks/")
async def tasks_view(web: View, request: Request) -> Response:
    """What every asyncio task of the worker waits on, and which partitions the consumer
    holds, has paused or has left out of its fetches: a stalled worker explains itself
    here (the tests print it when they time out waiting for the worker)."""
    consumer = app.consumer
    assigned = consumer.assignment()
    return web.json({
        "assigned": _names(assigned),
        "active": _names(consumer._active_partitions),
        "paused": _names(consumer._paused_partitions),
        # The member-state partitions this worker holds, as the group's assignment says.
        "member_state_active": _table_partitions(app.assignor.assigned_actives()),
        "member_state_standby": _table_partitions(app.assignor.assigned_standbys()),
        "aiokafka_paused": _names(consumer._thread._ensure_consumer().paused()),
        "flow_active": app.flow_control.is_active(),
        "offsets": _source_offsets(assigned),
        "agent_queue_sizes": {name: _queue_size(agent) for name, agent in app.agents.items()},
        "producer_metadata": _producer_metadata(),
        "tasks": _task_stacks(asyncio.get_running_loop()),
        # aiokafka runs in a thread with a loop of its own.
        "consumer_thread_tasks": _task_stacks(consumer._thread.thread_loop),
    })


def _names(tps) -> list[str]:
    return sorted(f"{tp.topic}-{tp.partition}" for tp in tps or ())


def _table_partitions(tps) -> list[int]:
    changelog = member_state.changelog_topic.get_topic_name()
    return sorted(tp.partition for tp in tps if tp.topic == changelog)


def _source_offsets(assigned) -> dict[str, dict]:
    """Per source partition: where aiokafka will fetch next, the end of the log, the
    last offset faust handed to a stream and the offset it last committed."""
    consumer = app.consumer
    subscription = consumer._thread._ensure_consumer()._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None  # None mid-rebalance
    out = {}
    for tp in sorted(assigned):
        if consumer._is_changelog_tp(tp):
            continue
        state = assignment.state_value(tp) if assignment else None
        out[f"{tp.topic}-{tp.partition}"] = {
            "position": state.position if state is not None and state.has_valid_position else None,
            "highwater": consumer.highwater(tp),
            "read": consumer._read_offset.get(tp),
            "committed": consumer._committed_offset.get(tp),
            "acked_pending": len(consumer._acked.get(tp) or ()),
        }
    return out


def _producer_metadata() -> dict:
    """The topics the producer refreshes metadata for (all of them while this is empty)
    and those its metadata shows now: a record for a topic it no longer shows waits for
    a leader (see `streams.faust_fixes`, fix 8)."""
    producer = app.producer._producer
    if producer is None:
        return {}
    client = producer.client
    return {"tracked": sorted(client._topics), "shown": sorted(client.cluster.topics())}


def _queue_size(agent) -> int | None:
    try:
        return agent.channel.queue.qsize()
    except Exception:  # an agent without a queued channel
        return None


def _task_stacks(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Each task as the chain of awaits it is suspended in, outermost first
    (`Task.print_stack` shows only the outermost coroutine of a suspended task)."""
    return sorted(_await_chain(task) for task in list(asyncio.all_tasks(loop)))


def _await_chain(task: asyncio.Task) -> str:
    lines = [repr(task)[:160]]
    awaitable = task.get_coro()
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None) \
            or getattr(awaitable, "gi_frame", None)
        if frame is not None:
            lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None) \
            or getattr(awaitable, "gi_yieldfrom", None)
    return "\n".join(lines)
