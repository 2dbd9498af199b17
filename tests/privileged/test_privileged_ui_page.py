"""The UI page in headless Chromium on scripted flows (no lab): what the script draws.

The lab test (test_privileged_ui.py) proves the whole path; this one pins the
page's behaviour on known input, quickly: nodes, edge colours and counts,
click-through, the namespace view, a refused filter.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from axoneme.observer.proto import observer_pb2 as pb
from axoneme.ui.server import build_app
from privileged.cdp import Browser

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")


def _pod(ns: str, name: str, app: str = "") -> pb.Endpoint:
    return pb.Endpoint(namespace=ns, pod_name=name, identity=300, labels=[f"k8s:app={app or name}"])


def _flow(src: pb.Endpoint, dst: pb.Endpoint, verdict: int, port: int) -> pb.GetFlowsResponse:
    f = pb.Flow(verdict=verdict, source=src, destination=dst, node_name="node2")
    f.time.seconds = 1_700_000_000
    f.l4.TCP.destination_port = port
    f.event_type.type = 9
    f.is_reply.value = False
    if verdict == 2:
        f.drop_reason_desc = "POLICY_DENIED"
    return pb.GetFlowsResponse(flow=f)


class Flows:
    def __init__(self, responses: list[pb.GetFlowsResponse]) -> None:
        self.responses = responses

    async def flows(self, request: pb.GetFlowsRequest) -> AsyncIterator[pb.GetFlowsResponse]:
        for resp in self.responses:
            yield resp
        await asyncio.Event().wait()

    async def namespaces(self) -> list[str]:
        return ["demo"]


class Health:
    async def reports(self) -> list[dict[str, Any]]:
        return [
            {
                "source": "node1",
                "nodes": [{"name": "node2", "reachable": False, "paths": []}],
                "alerts": [
                    {"target": "node2", "metric": "loss", "message": "node1 -> node2 loss 40%"}
                ],
            }
        ]


NODES = "[...document.querySelectorAll('g.node')].map(n => n.dataset.id).sort()"
EDGES = (
    "Object.fromEntries([...document.querySelectorAll('g.edge')]"
    ".map(e => [e.dataset.key, e.dataset.verdict]))"
)
ROWS = "[...document.querySelectorAll('#flows tbody tr')].map(r => r.dataset.edge)"


def test_page_draws_map_table_alerts_and_follows_clicks() -> None:
    client, server, other = _pod("demo", "client"), _pod("demo", "web"), _pod("x", "o")
    flows = Flows(
        [
            _flow(client, server, 1, 80),
            _flow(client, server, 2, 80),
            _flow(other, server, 2, 81),
            _flow(_pod("y", "a"), _pod("y", "b"), 1, 53),  # not in the namespace view
        ]
    )

    async def scenario() -> None:
        runner = web.AppRunner(build_app(flows, Health(), default_namespace="demo"))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        browser = Browser()
        try:
            await browser.open(f"http://127.0.0.1:{port}/")
            assert await browser.wait_for("three nodes", f"{NODES}.length === 3 && {NODES}")
            assert await browser.evaluate(NODES) == ["demo/client", "demo/web", "x/o"]
            edges = await browser.wait_for(
                "two edges", f"Object.keys({EDGES}).length == 2 && {EDGES}"
            )
            assert edges == {
                "demo/client|demo/web|80/TCP": "mixed",
                "x/o|demo/web|81/TCP": "dropped",
            }
            label = await browser.evaluate(
                "document.querySelector('g.edge[data-src=\"demo/client\"] text').textContent"
            )
            assert label == "80/TCP  ✓1  ✗1"
            outside = await browser.evaluate(
                "document.querySelector('g.node[data-id=\"x/o\"]').classList.contains('outside')"
            )
            assert outside
            assert len(await browser.wait_for("three rows", f"{ROWS}.length === 3 && {ROWS}")) == 3
            alerts = await browser.wait_for(
                "the alert", "[...document.querySelectorAll('#alerts li')].map(l => l.textContent)"
            )
            assert alerts == ["node1 -> node2 loss 40%"]

            await browser.evaluate(
                "document.querySelector('g.edge[data-key=\"x/o|demo/web|81/TCP\"]')"
                ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
            )
            assert await browser.evaluate(ROWS) == ["x/o|demo/web|81/TCP"]
            await browser.evaluate("document.getElementById('clear-edge').click()")
            assert len(await browser.evaluate(ROWS)) == 3

            await browser.evaluate(
                "document.getElementById('filter').value = '--port';"
                "document.getElementById('apply').click()"
            )
            error = await browser.wait_for(
                "the filter error", "document.getElementById('filter-error').textContent"
            )
            assert "--port" in error
        finally:
            await browser.close()
            await runner.cleanup()

    asyncio.run(scenario())
