"""Which worker answers a member read: the one that owns the member's partition.

Several workers with one app id form one consumer group. A member's state lives in
the `member-state` partition its id hashes to (murmur2, the partition of all its
events), held *active* by the worker the group gave that partition, and kept as a
*standby* copy (restored from the changelog, `HIRESTREAM_STANDBY_REPLICAS`) by
another. A `GET /members/<id>/` arriving at any worker is:

1. answered here when this worker holds the partition active (and has restored it);
2. else forwarded to the worker that holds it active, which faust's own assignment
   names (every worker's assignment carries the group's changelog distribution and
   each worker's canonical URL: `app.router.table_metadata`). The caller's
   `Authorization` header goes along, so the owner checks the token itself (and
   whoever may join the consumer group is trusted with it: Kafka's ACLs guard that);
3. else, when the owner cannot be reached or answers 5xx, or no worker holds the
   partition active (mid-rebalance), answered from this worker's standby copy, which
   may be behind the owner's;
4. else 503 with `Retry-After`.

Every answer says which: `X-Hirestream-Served-By` (the canonical URL of the worker
that read its table), `X-Hirestream-Copy` (`active` or `standby`) and
`X-Hirestream-Partition`; a forwarded answer also carries `X-Hirestream-Forwarded-By`.
A request that was forwarded once is never forwarded again, so two workers that see
a rebalance differently cannot bounce it between them. `?local=1` asks for this
worker's own copy the same way (never forwarded): how far a standby copy is behind
can be seen by comparing it with the owner's answer.

Why not faust's `@app.table_route` / `@app.topic_route` (faust-streaming 0.15.3,
`faust/app/router.py`): `table_route` hashes the table's *serialized* key, the JSON
text `"m1"` with its quotes, while a member's partition is that of its raw Kafka key
`m1` (`streams.tables.acting_as` writes state on the event's partition), so it sends
most reads to a worker that does not hold the member; both helpers take the partition
count from the producer's metadata, which holds only topics the producer has written
to (aiokafka `_partition` raises TypeError on the others); and neither can fall back
on a standby copy or say who answered. What is used of faust is its assignment.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import Enum

import aiohttp
from faust.types import TP
from faust.web import Request, Response, View
from yarl import URL

from streams.app import app, member_state, settings
from streams.decoding import key_partition, partition_count
from streams.topics import MEMBERS
from streams.web_headers import COPY, FORWARDED_BY, PARTITION, SERVED_BY, hirestream_headers

log = logging.getLogger(__name__)



class Step(str, Enum):
    ACTIVE = "active"  # read this worker's active copy
    FORWARD = "forward"  # ask the worker that holds the partition active
    STANDBY = "standby"  # read this worker's standby copy
    UNAVAILABLE = "unavailable"  # 503: nobody here or reachable holds it


@dataclass(frozen=True)
class Placement:
    """Where one member's partition is, as this worker sees the group's assignment."""

    partition: int
    here: Step | None  # ACTIVE or STANDBY: this worker's copy; None: no copy here
    restoring: bool  # this worker's active copy is still being restored from the changelog
    owner: str | None  # canonical URL of the worker holding it active; None mid-rebalance


def plan(placement: Placement, self_url: str, forwarded: bool) -> list[Step]:
    """The steps to try, in order, until one answers (503 when none does)."""
    if placement.here is Step.ACTIVE:
        return [Step.UNAVAILABLE] if placement.restoring else [Step.ACTIVE]
    steps = []
    if placement.owner is not None and placement.owner != self_url and not forwarded:
        steps.append(Step.FORWARD)
    if placement.here is Step.STANDBY:
        steps.append(Step.STANDBY)
    return steps or [Step.UNAVAILABLE]


def self_url() -> str:
    return str(app.conf.canonical_url)


def placement(member_id: str) -> Placement:
    partition = key_partition(member_id.encode(), partition_count(MEMBERS.name))
    changelog = member_state.changelog_topic.get_topic_name()
    tp = TP(changelog, partition)
    assignor = app.assignor
    here = Step.ACTIVE if assignor.is_active(tp) else Step.STANDBY if assignor.is_standby(tp) else None
    recovery = app.tables.recovery
    restoring = here is Step.ACTIVE and bool(recovery.in_recovery) and tp in recovery.active_tps
    owner = next((url for url, topics in app.router.table_metadata(member_state.name).items()
                  if partition in topics.get(changelog, ())), None)
    return Placement(partition, here, restoring, owner)


async def read_member(web: View, request: Request, member_id: str) -> Response:
    where = placement(member_id)
    me = self_url()
    forwarded = FORWARDED_BY in request.headers or request.query.get("local") == "1"
    for step in plan(where, me, forwarded=forwarded):
        if step is Step.FORWARD:
            answer = await _forward(web, request, where.owner)
            if answer is not None:
                return answer
        elif step in (Step.ACTIVE, Step.STANDBY):
            return _local(web, member_id, where.partition, step, me)
    why = (f"partition {where.partition} is being restored on this worker" if where.restoring
           else f"no worker this one can reach holds partition {where.partition} (a rebalance or failover "
                f"is under way)")
    return web.json({"error": why}, status=503,
                    headers={"Retry-After": "1", PARTITION: str(where.partition), SERVED_BY: me})


def _local(web: View, member_id: str, partition: int, copy: Step, me: str) -> Response:
    headers = {SERVED_BY: me, COPY: copy.value, PARTITION: str(partition)}
    value = member_state.get(member_id)  # no current event: faust reads every open partition's DB
    if value is None:
        return web.json({"error": f"unknown member {member_id!r}"}, status=404, headers=headers)
    return web.json(value, headers=headers)


async def _forward(web: View, request: Request, owner: str) -> Response | None:
    """The owner's answer, or None when it cannot give one (unreachable, 5xx)."""
    headers = {FORWARDED_BY: self_url()}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    url = URL(owner).with_path(request.path).with_query(request.query)
    try:
        async with app.http_client.get(
                url, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=settings.forward_timeout)) as resp:
            body = await resp.read()
            if resp.status >= 500:
                log.info("member read: owner %s answered %d for %s", owner, resp.status, request.path)
                return None
            return web.bytes(body, content_type=resp.content_type, status=resp.status,
                             headers={**hirestream_headers(resp.headers), FORWARDED_BY: self_url()})
    except (aiohttp.ClientError, asyncio.TimeoutError) as err:
        log.info("member read: owner %s unreachable for %s: %r", owner, request.path, err)
        return None
