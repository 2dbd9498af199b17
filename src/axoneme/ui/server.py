"""The UI's HTTP server: the page, and one Server-Sent Events stream per browser view.

``GET /api/stream?namespace=NS&filter=FLAGS`` opens one followed GetFlows
call with the filter flags, keeps the flows that touch the namespace, and
sends ``flow`` events (table rows), ``map`` events (a service-map snapshot,
at most every ``MAP_PERIOD`` and only when it changed) and ``health`` events
(alerts and reachability, every ``HEALTH_PERIOD``). ``GET /api/check`` answers
whether a filter string is valid before the browser opens a stream with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from importlib import resources
from typing import Any

from aiohttp import web

from axoneme.health.checker import Thresholds
from axoneme.ui.alerts import health_alerts, health_summary
from axoneme.ui.filters import FilterError, flows_request
from axoneme.ui.model import ServiceMap, flow_view
from axoneme.ui.sources import FlowSource, HealthSource, SourceError

__all__ = ["build_app"]

log = logging.getLogger(__name__)

MAP_PERIOD = 0.25
HEALTH_PERIOD = 2.0
STATIC = resources.files("axoneme.ui") / "static"
_CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _static(name: str) -> web.Response:
    path = STATIC / name
    if not path.is_file():
        raise web.HTTPNotFound()
    suffix = name[name.rfind(".") :]
    return web.Response(
        body=path.read_bytes(),
        content_type=_CONTENT_TYPES.get(suffix, "application/octet-stream"),
        headers={"Cache-Control": "no-store"},
    )


def build_app(
    flows: FlowSource,
    health: HealthSource,
    *,
    default_namespace: str = "",
    thresholds: Thresholds | None = None,
) -> web.Application:
    async def index(_: web.Request) -> web.Response:
        return _static("index.html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        return _static(name)

    async def config(_: web.Request) -> web.Response:
        return web.json_response({"namespace": default_namespace})

    async def check(request: web.Request) -> web.Response:
        try:
            flows_request(request.query.get("filter", ""))
        except FilterError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def namespaces(_: web.Request) -> web.Response:
        try:
            found = await flows.namespaces()
        except SourceError as exc:
            return web.json_response({"error": str(exc)}, status=502)
        return web.json_response({"namespaces": found})

    async def health_view(_: web.Request) -> web.Response:
        reports = await health.reports()
        return web.json_response(
            {"alerts": health_alerts(reports, thresholds), "nodes": health_summary(reports)}
        )

    async def stream(request: web.Request) -> web.StreamResponse:
        namespace = request.query.get("namespace", default_namespace)
        try:
            req = flows_request(request.query.get("filter", ""))
        except FilterError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        out: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10000)
        smap = ServiceMap()

        async def pump_flows() -> None:
            try:
                async for resp in flows.flows(req):
                    view = flow_view(resp)
                    if view is None or not view.touches(namespace):
                        continue
                    smap.add(view)
                    with contextlib.suppress(asyncio.QueueFull):  # a stalled browser loses rows
                        out.put_nowait(_event("flow", view.to_json()))
            except SourceError as exc:
                await out.put(_event("failure", {"error": str(exc)}))

        async def pump_map() -> None:
            sent = -1
            while True:
                if smap.version != sent:
                    sent = smap.version
                    await out.put(_event("map", {"namespace": namespace, **smap.snapshot()}))
                await asyncio.sleep(MAP_PERIOD)

        async def pump_health() -> None:
            while True:
                reports = await health.reports()
                await out.put(
                    _event(
                        "health",
                        {
                            "alerts": health_alerts(reports, thresholds),
                            "nodes": health_summary(reports),
                        },
                    )
                )
                await asyncio.sleep(HEALTH_PERIOD)

        tasks = [
            asyncio.ensure_future(pump_flows()),
            asyncio.ensure_future(pump_map()),
            asyncio.ensure_future(pump_health()),
        ]
        try:
            while True:
                await response.write(await out.get())
        except ConnectionResetError:
            pass  # the browser went away
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return response

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/config", config)
    app.router.add_get("/api/check", check)
    app.router.add_get("/api/namespaces", namespaces)
    app.router.add_get("/api/health", health_view)
    app.router.add_get("/api/stream", stream)
    return app
