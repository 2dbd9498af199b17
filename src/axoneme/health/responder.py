"""The health responder: a tiny HTTP server other nodes probe (Cilium's port 4240)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["HEALTH_PORT", "HelloAnswer", "http_probe", "parse_hello", "responder_app", "serve"]

HEALTH_PORT = 4240
MAX_ANSWER = 4096


def responder_app(node: str, role: str, health_ip: str = "") -> web.Application:
    """``GET /hello``: who answered; a node's answer also names its health endpoint."""
    body = {"node": node, "role": role, **({"healthIP": health_ip} if health_ip else {})}

    async def hello(_: web.Request) -> web.Response:
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/hello", hello)
    return app


async def serve(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Serve ``app`` on an already bound socket (possibly made in another netns)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


@dataclass(frozen=True)
class HelloAnswer:
    seconds: float  # TCP connect to the whole answer
    body: dict[str, Any]


def parse_hello(response: bytes) -> dict[str, Any] | None:
    """The JSON object of a ``200`` answer to ``GET /hello``, else None (pure)."""
    head, _, body = response.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or status[1] != b"200":
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def http_probe(ip: str, port: int, timeout: float) -> HelloAnswer | None:
    """``GET /hello`` over a fresh TCP connection; None on any failure or non-200."""
    started = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            writer.write(b"GET /hello HTTP/1.0\r\nHost: health\r\n\r\n")
            response = await reader.read(MAX_ANSWER)  # HTTP/1.0: the server closes
            while len(response) < MAX_ANSWER and (more := await reader.read(MAX_ANSWER)):
                response += more
    except (TimeoutError, OSError):
        return None
    finally:
        if writer is not None:
            writer.close()
    body = parse_hello(response)
    return HelloAnswer(time.perf_counter() - started, body) if body is not None else None
