"""The agent's local REST API (see api/agent-api.md), as an aiohttp application."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from axoneme.agent.cni import CNIRequestError, parse_request
from axoneme.agent.monitor import EventHub
from axoneme.agent.service import AgentService
from axoneme.endpoint.manager import EndpointError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: int, msg: str, details: str = "") -> web.Response:
    return web.json_response({"code": code, "msg": msg, "details": details}, status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return _error(exc.status, 4, exc.reason)
    except CNIRequestError as exc:
        return _error(400, exc.code, exc.msg, exc.details)
    except EndpointError as exc:
        return _error(500, exc.code, exc.msg, exc.details)
    except Exception as exc:  # the API must answer, never hang up on the plugin
        log.exception("%s %s failed", request.method, request.path)
        return _error(500, 999, "internal agent error", repr(exc))


def build_app(service: AgentService, hub: EventHub | None = None) -> web.Application:
    app = web.Application(middlewares=[errors])

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "node": service.node})

    async def status(_: web.Request) -> web.Response:
        return web.json_response(await service.status())

    async def endpoints(_: web.Request) -> web.Response:
        return web.json_response(service.endpoint_view())

    async def policy(_: web.Request) -> web.Response:
        return web.json_response(service.policy_status())

    async def health(_: web.Request) -> web.Response:
        if service.health is None:
            raise web.HTTPNotFound(reason="health checking is not enabled on this agent")
        return web.json_response(service.health())

    async def tcp_retransmits(_: web.Request) -> web.Response:
        if service.tcp_retransmits is None:
            raise web.HTTPNotFound(
                reason="TCP retransmit tracking is not enabled on this agent "
                "(--enable-tcp-retransmit-tracking)"
            )
        return web.json_response(service.tcp_retransmits())

    async def monitor(request: web.Request) -> web.StreamResponse:
        if hub is None:
            raise web.HTTPNotFound(reason="this agent has no datapath events")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        async for event in hub.subscribe():
            await response.write(json.dumps(event).encode() + b"\n")
        return response

    async def cni(request: web.Request) -> web.Response:
        command = request.match_info["command"].upper()
        try:
            body: Any = await request.json()
        except json.JSONDecodeError as exc:
            raise CNIRequestError(6, "request body is not JSON", str(exc)) from exc
        req = parse_request(command, body)
        return web.json_response(await service.handle_cni(req))

    app.router.add_get("/v1/healthz", healthz)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/endpoints", endpoints)
    app.router.add_get("/v1/policy", policy)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/tcp-retransmits", tcp_retransmits)
    app.router.add_get("/v1/monitor", monitor)
    app.router.add_post("/v1/cni/{command}", cni)
    return app
