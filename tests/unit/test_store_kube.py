"""KubeStore through the real kubernetes_asyncio client, against a local HTTP server
replaying API server answers (no API server can run here): kubeconfig and bearer
token, paths, 404, list, watch streaming, 410 Gone, and the read-only refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from axoneme.store.kube import KubeStore, ResourceExpiredError
from axoneme.store.types import Key, StoreError
from unit.test_store_kubetranslate import POD_LIST, event, pod

pytest.importorskip("kubernetes_asyncio")

TOKEN = "replay-token"


def replay_app(seen: list[tuple[str, str, str]]) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append((request.path, request.query_string, request.headers.get("Authorization", "")))
        if request.path == "/version":
            return web.json_response({"gitVersion": "v1.31.2"})
        if request.path == "/api/v1/pods" and request.query.get("watch") == "true":
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            await resp.write(event("MODIFIED", pod("48214")))
            if request.query.get("resourceVersion") == "1":
                gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
                await resp.write(event("ERROR", gone))
            await resp.write_eof()
            return resp
        if request.path == "/api/v1/pods":
            return web.json_response(POD_LIST)
        if request.path == "/api/v1/namespaces/demo/pods/web-0":
            item = POD_LIST["items"][0]
            return web.json_response({"kind": "Pod", "apiVersion": "v1", **item})
        return web.json_response(
            {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}, status=404
        )

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    return app


async def serve(tmp_path: Path, seen: list[tuple[str, str, str]]) -> tuple[web.AppRunner, Path]:
    runner = web.AppRunner(replay_app(seen))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": TOKEN}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return runner, kubeconfig


async def collect(stream: AsyncIterator[Any], into: list[Any]) -> None:
    async for item in stream:
        into.append(item)


def test_read_side_through_the_client(tmp_path: Path) -> None:
    async def run() -> None:
        seen: list[tuple[str, str, str]] = []
        runner, kubeconfig = await serve(tmp_path, seen)
        store = KubeStore(str(kubeconfig))
        try:
            assert await store.health() == "Ok Kubernetes v1.31.2"
            listing = await store.list("Pod")
            assert listing.revision == 48213 and listing.items[0]["kind"] == "Pod"
            got = await store.get(Key("Pod", "demo", "web-0"))
            assert got is not None and got["metadata"]["uid"].startswith("6f1c")
            assert await store.get(Key("Pod", "demo", "nope")) is None
            events: list[Any] = []
            with pytest.raises(StoreError, match="watch on Pod ended"):
                await collect(store.watch("Pod", 48213), events)
            assert [(e.type, e.revision) for e in events] == [("MODIFIED", 48214)]
            with pytest.raises(ResourceExpiredError, match="too old"):
                await collect(store.watch("Pod", 1), [])
            for write in (
                store.put(pod("1")),
                store.create(pod("1")),
                store.delete(Key("Pod", "demo", "web-0")),
                store.grant(5),
            ):
                with pytest.raises(StoreError, match="read-only"):
                    await write
        finally:
            await store.close()
            await runner.cleanup()
        assert all(auth == f"Bearer {TOKEN}" for _, _, auth in seen), seen
        watch_queries = [q for path, q, _ in seen if "watch=true" in q]
        assert "resourceVersion=48213" in watch_queries[0]
        assert "allowWatchBookmarks=true" in watch_queries[0]

    asyncio.run(run())


def test_a_bad_kubeconfig_is_a_clear_store_error(tmp_path: Path) -> None:
    async def run() -> None:
        store = KubeStore(str(tmp_path / "missing"))
        with pytest.raises(StoreError, match="Kubernetes client configuration"):
            await store.list("Pod")
        await store.close()

    asyncio.run(run())


def test_an_unreachable_api_server_is_a_store_error(tmp_path: Path) -> None:
    async def run() -> None:
        runner, kubeconfig = await serve(tmp_path, [])
        await runner.cleanup()  # nobody listens any more
        store = KubeStore(str(kubeconfig), timeout=2)
        try:
            with pytest.raises(StoreError, match="Kubernetes API GET /api/v1/pods"):
                await store.list("Pod")
        finally:
            await store.close()

    asyncio.run(run())
