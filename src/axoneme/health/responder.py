"""The health responder: a tiny HTTP server other nodes probe (Cilium's port 4240)."""

from __future__ import annotations

import asyncio
import socket
import time

from aiohttp import web

__all__ = ["HEALTH_PORT", "http_probe", "responder_app", "serve"]

HEALTH_PORT = 4240


def responder_app(node: str, role: str) -> web.Application:
    async def hello(_: web.Request) -> web.Response:
        return web.json_response({"node": node, "role": role})

    app = web.Application()
    app.router.add_get("/hello", hello)
    return app


async def serve(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Serve ``app`` on an already bound socket (possibly made in another netns)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


async def http_probe(ip: str, port: int, timeout: float) -> float | None:
    """Seconds for a TCP connect + ``GET /hello`` answered 200, or None on any failure."""
    started = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            writer.write(b"GET /hello HTTP/1.0\r\nHost: health\r\n\r\n")
            status = await reader.readline()
        if not status.startswith(b"HTTP/1.") or status.split()[1:2] != [b"200"]:
            return None
        return time.perf_counter() - started
    except (TimeoutError, OSError):
        return None
    finally:
        if writer is not None:
            writer.close()
