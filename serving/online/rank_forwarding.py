"""`/v1/rank` for a member this worker holds no copy of: asked of the worker that owns it.

A worker ranks from its own copy of a member's state (active or standby). With fewer
standby copies than workers - 1, some members are on neither; instead of a 503 the
request goes to the worker that holds the member's partition active, as a member read
does (`streams.member_reads`). The group's assignment names that worker by its faust
web URL, not its scoring port, so the owner's `/serving/` page is asked once for its
scoring address (its host taken from the web URL when it binds every interface), and
the request body, with the caller's `Authorization`, is posted there with
`X-Hirestream-Forwarded-By`. A forwarded request is never forwarded again, so two
workers with stale views of the assignment cannot bounce it between them. An owner
that cannot be reached, or answers 5xx, leaves the 503.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable, Mapping

import aiohttp
from yarl import URL

from streams.web_headers import FORWARDED_BY, hirestream_headers

log = logging.getLogger(__name__)

ANY_INTERFACE = {"0.0.0.0", "::", ""}


@dataclass(frozen=True)
class Forwarded:
    """The owner's answer, relayed as it came (its X-Hirestream-* headers kept)."""

    status: int
    body: bytes
    headers: dict[str, str]


def scoring_address(owner_web_url: str, advertised: str) -> str:
    """The owner's scoring base URL: the one its `/serving/` page gives, with the web
    URL's host where it binds every interface (that host is how this worker reaches it)."""
    url = URL(advertised)
    if url.host in ANY_INTERFACE or url.host is None:
        url = url.with_host(URL(owner_web_url).host)
    return str(url)


class RankForwarder:
    """`await forwarder(owner_web_url, body, authorization)` -> `Forwarded` or None."""

    def __init__(self, session: Callable[[], aiohttp.ClientSession], self_url: Callable[[], str], timeout: float):
        self._session = session
        self._self_url = self_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._addresses: dict[str, str] = {}  # owner web URL -> its scoring base URL

    async def __call__(self, owner: str, body: bytes, authorization: str | None) -> Forwarded | None:
        headers = {FORWARDED_BY: self._self_url(), "Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        try:
            base = await self._address(owner, headers)
            if base is None:
                return None
            async with self._session().post(URL(base).with_path("/v1/rank"), data=body, headers=headers,
                                             timeout=self._timeout, allow_redirects=False) as resp:
                answer = await resp.read()
                if resp.status >= 500:
                    log.info("rank: owner %s answered %d", owner, resp.status)
                    self._addresses.pop(owner, None)  # it may have moved: ask again next time
                    return None
                return Forwarded(resp.status, answer, {**hirestream_headers(resp.headers),
                                                       FORWARDED_BY: self._self_url()})
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
            log.info("rank: owner %s unreachable: %r", owner, err)
            self._addresses.pop(owner, None)
            return None

    async def _address(self, owner: str, headers: Mapping[str, str]) -> str | None:
        if owner not in self._addresses:
            async with self._session().get(URL(owner).with_path("/serving/"), headers=headers,
                                            timeout=self._timeout, allow_redirects=False) as resp:
                if resp.status != 200:
                    log.info("rank: owner %s's /serving/ answered %d", owner, resp.status)
                    return None
                advertised = (await resp.json()).get("http")
            if not advertised:
                log.info("rank: owner %s serves no HTTP API", owner)
                return None
            self._addresses[owner] = scoring_address(owner, advertised)
        return self._addresses[owner]

