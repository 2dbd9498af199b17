"""The UI server over real HTTP on loopback, fed by an in-memory flow source."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from ui_helpers import flow, pod

from axoneme.observer.proto import observer_pb2 as pb
from axoneme.ui.server import build_app


class MemoryFlows:
    """Plays given flows to every stream, then holds it open like a follow."""

    def __init__(self, responses: list[pb.GetFlowsResponse]) -> None:
        self.responses = responses
        self.requests: list[pb.GetFlowsRequest] = []
        self.open = 0

    async def flows(self, request: pb.GetFlowsRequest) -> AsyncIterator[pb.GetFlowsResponse]:
        self.requests.append(request)
        self.open += 1
        try:
            for resp in self.responses:
                yield resp
            await asyncio.Event().wait()
        finally:
            self.open -= 1

    async def namespaces(self) -> list[str]:
        return ["demo", "x"]


class NoHealth:
    async def reports(self) -> list[dict[str, Any]]:
        return []


async def _events(session: ClientSession, url: str, want: int) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    async with session.get(url) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
        kind = ""
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
                if len(events) >= want:
                    return events
    return events


def test_stream_sends_rows_and_map_of_the_namespace_and_stops_with_the_browser() -> None:
    client, web, other = pod("demo", "client"), pod("demo", "web", app="web"), pod("x", "o")
    source = MemoryFlows([flow(client, web), flow(other, pod("x", "p")), flow(client, web, 2)])

    async def scenario() -> None:
        async with TestServer(build_app(source, NoHealth())) as server, ClientSession() as s:
            url = str(server.make_url("/api/stream?namespace=demo&filter=--port%2080"))
            events = await asyncio.wait_for(_events(s, url, 4), 10)
            kinds = [k for k, _ in events]
            assert kinds.count("flow") == 2 and "health" in kinds, kinds
            rows = [d for k, d in events if k == "flow"]
            assert [r["verdict"] for r in rows] == ["FORWARDED", "DROPPED"]
            assert source.requests[0].follow and source.requests[0].whitelist
            # The map follows shortly (it is sent at most every MAP_PERIOD).
            more = await asyncio.wait_for(_events(s, url, 6), 10)
            maps = [d for k, d in more if k == "map" and d["edges"]]
            assert maps and maps[-1]["namespace"] == "demo"
            assert [e["key"] for e in maps[-1]["edges"]] == ["demo/client|demo/web|80/TCP"]
            assert maps[-1]["edges"][0]["verdict"] == "mixed"
            for _ in range(50):  # both streams closed by the client: their calls end
                if source.open == 0:
                    break
                await asyncio.sleep(0.05)
            assert source.open == 0

    asyncio.run(scenario())


def test_bad_filters_are_refused_naming_the_flag_and_pages_are_served() -> None:
    source = MemoryFlows([])

    async def scenario() -> None:
        app = build_app(source, NoHealth(), default_namespace="demo")
        async with TestServer(app) as server, ClientSession() as s:
            r = await s.get(server.make_url("/api/check?filter=--verdict%20NOPE"))
            assert r.status == 400 and "--verdict" in (await r.json())["error"]
            r = await s.get(server.make_url("/api/stream?filter=--bogus"))
            assert r.status == 400 and "--bogus" in (await r.json())["error"]
            assert source.requests == []  # nothing was asked of the relay
            r = await s.get(server.make_url("/api/check?filter=--verdict%20DROPPED"))
            assert r.status == 200
            r = await s.get(server.make_url("/"))
            assert r.status == 200 and "service map" in await r.text()
            r = await s.get(server.make_url("/static/app.js"))
            assert r.status == 200 and "EventSource" in await r.text()
            r = await s.get(server.make_url("/static/..%2Fserver.py"))
            assert r.status == 404
            assert (await (await s.get(server.make_url("/api/config"))).json()) == {
                "namespace": "demo"
            }
            ns = await (await s.get(server.make_url("/api/namespaces"))).json()
            assert ns == {"namespaces": ["demo", "x"]}

    asyncio.run(scenario())
