"""Multi-pool IPAM on the agent: this node's pool shares, and routes to other nodes' shares.

The operator records every node's share of each CiliumPodIPPool on its
CiliumNode (``spec.ipam.pools.allocated``). This component watches
CiliumNodes: its own gives the endpoint manager the CIDRs to allocate pool
addresses from; the others' become kernel routes via their InternalIP, as
``noderoutes`` does for the default pod CIDRs (the tunnel map does not carry
pool CIDRs yet, so pool traffic is routed natively in every mode).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from axoneme.agent.noderoutes import reconcile_routes
from axoneme.ipam.pools import DEFAULT_POOL, ciliumnode_ip, node_pool_cidrs
from axoneme.store.informer import run_informer
from axoneme.store.types import Resource, WatchEvent

if TYPE_CHECKING:
    from axoneme.agent.daemon import AgentContext

log = logging.getLogger(__name__)


def own_pools(ciliumnode: Resource | None) -> dict[str, str]:
    """Pool name → this node's CIDR of it (the default pool is the manager's own CIDR)."""
    if ciliumnode is None:
        return {}
    return {
        name: cidrs[0]
        for name, cidrs in node_pool_cidrs(ciliumnode).items()
        if name != DEFAULT_POOL and cidrs
    }


def pool_routes(ciliumnodes: dict[str, Resource], self_name: str) -> dict[str, str]:
    """Pool CIDR → gateway (the owning node's InternalIP), for every other node."""
    routes: dict[str, str] = {}
    for name, obj in sorted(ciliumnodes.items()):
        ip = ciliumnode_ip(obj)
        if name == self_name or not ip:
            continue
        for pool, cidrs in node_pool_cidrs(obj).items():
            if pool != DEFAULT_POOL:
                routes.update(dict.fromkeys(cidrs, ip))
    return routes


class PoolSync:
    def __init__(self, ctx: AgentContext) -> None:
        self._ctx = ctx
        self._nodes: dict[str, Resource] = {}
        self._installed: dict[str, str] = {}
        self._problems: list[str] = []

    async def on_sync(self, items: list[Resource]) -> None:
        self._nodes = {str(o["metadata"]["name"]): o for o in items}
        await self._apply()

    async def on_event(self, event: WatchEvent) -> None:
        name = str(event.object["metadata"]["name"])
        if event.type == "DELETED":
            self._nodes.pop(name, None)
        else:
            self._nodes[name] = event.object
        await self._apply()

    async def _apply(self) -> None:
        node = self._ctx.config.node
        mine = own_pools(self._nodes.get(node))
        problems = await asyncio.to_thread(self._ctx.manager.set_pools, mine)
        if problems != self._problems:
            for problem in problems:
                log.error("IP pool: %s", problem)
            self._problems = problems
        await reconcile_routes(self._installed, pool_routes(self._nodes, node), "pool route")


async def run(ctx: AgentContext) -> None:
    sync = PoolSync(ctx)
    await run_informer(ctx.store, "CiliumNode", sync.on_sync, sync.on_event)


__all__ = ["PoolSync", "own_pools", "pool_routes", "run"]
