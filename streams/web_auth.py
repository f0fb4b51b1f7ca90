"""Who may use the worker's web server: a bearer token, when one is configured.

The read API serves member profiles and histories, and `/debug/tasks/` serves stack
traces and offsets. The server binds loopback unless `HIRESTREAM_WEB_BIND` says
otherwise (and `streams.settings` refuses a reachable address without a token).
With `HIRESTREAM_TOKEN` set, every request but the health check must carry
`Authorization: Bearer <token>`, or it gets 401. The check is an aiohttp middleware
on faust's web application, so it covers faust's own views as well as ours, and a
view added later cannot forget it.
"""
from __future__ import annotations

import hmac

from aiohttp import web

OPEN_PATHS = frozenset({"/health/"})  # what a load balancer or orchestrator probes
UNAUTHORIZED = {"error": "this endpoint needs 'Authorization: Bearer <HIRESTREAM_TOKEN>'"}
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization` header carries `Bearer <token>`, compared in constant
    time (no guessing by timing). The scoring HTTP API (serving.online.http_api) uses it too."""
    return hmac.compare_digest((authorization or "").encode(), f"Bearer {token}".encode())


def token_middleware(token: str):
    @web.middleware
    async def require_token(request: web.Request, handler):
        if request.path in OPEN_PATHS:
            return await handler(request)
        if not bearer_matches(request.headers.get("Authorization"), token):
            return web.json_response(UNAUTHORIZED, status=401, headers=UNAUTHORIZED_HEADERS)
        return await handler(request)

    return require_token


def guard(web_app: web.Application, token: str | None) -> None:
    """Put the token check in front of every route of `web_app` (before it starts)."""
    if token:
        web_app.middlewares.append(token_middleware(token))
