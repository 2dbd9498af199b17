"""Plain kernel routing between nodes: a route to every other node's pod CIDRs via its IP.

This is the foundation's cross-node path; the overlay and native-routing
modes replace it. Desired routes are a pure function of the Node set.
"""

from __future__ import annotations

import asyncio
import logging

from axoneme.datapath.linux import netdev
from axoneme.k8s.errors import ValidationError
from axoneme.k8s.objects import Node, parse_node
from axoneme.store.types import Resource, WatchEvent

log = logging.getLogger(__name__)


def desired_routes(nodes: list[Node], self_name: str) -> dict[str, str]:
    """pod CIDR → gateway (the owning node's InternalIP), for every other node."""
    routes: dict[str, str] = {}
    for node in nodes:
        if node.name == self_name or not node.internal_ip:
            continue
        for cidr in node.pod_cidrs:
            routes[cidr] = node.internal_ip
    return routes


class NodeRoutes:
    def __init__(self, self_name: str) -> None:
        self._self = self_name
        self._nodes: dict[str, Node] = {}
        self._installed: dict[str, str] = {}

    async def on_sync(self, items: list[Resource]) -> None:
        self._nodes = {}
        for raw in items:
            self._remember(raw)
        await self._apply()

    async def on_event(self, event: WatchEvent) -> None:
        name = event.object["metadata"]["name"]
        if event.type == "DELETED":
            self._nodes.pop(name, None)
        else:
            self._remember(event.object)
        await self._apply()

    def _remember(self, raw: Resource) -> None:
        try:
            node = parse_node(raw)
        except ValidationError as exc:
            log.warning("ignoring invalid Node: %s", exc)
            return
        self._nodes[node.name] = node

    async def _apply(self) -> None:
        want = desired_routes(list(self._nodes.values()), self._self)
        await reconcile_routes(self._installed, want, "route")

    async def resync_forever(self, period: float = 5.0) -> None:
        while True:
            await asyncio.sleep(period)
            await self._apply()


async def reconcile_routes(installed: dict[str, str], want: dict[str, str], what: str) -> None:
    """Make the kernel's routes (CIDR -> gateway) those of ``want``; ``installed`` tracks them.

    A route that fails to install is left out of ``installed``, so the next call retries it.
    """
    for cidr in set(installed) - set(want):
        await asyncio.to_thread(netdev.delete_route, cidr)
        del installed[cidr]
    for cidr, gateway in want.items():
        if installed.get(cidr) != gateway:
            try:
                await asyncio.to_thread(netdev.replace_route, cidr, gateway)
            except Exception as exc:
                log.warning("%s %s via %s: %s", what, cidr, gateway, exc)
                continue
            installed[cidr] = gateway
            log.info("%s %s via %s", what, cidr, gateway)
