"""The agent's node lease: its node entry and endpoints live exactly as long as it does.

At start the agent takes back the CiliumEndpoints of the endpoints it
restored (a previous run wrote them under a lease that dies with it), adds
its ``ClusterNode`` entry, and then holds a lease for all of them
(``store.leased.keep_lease``). If the agent dies, every other node sees its
entries expire after the TTL; if the store goes away, nothing changes here
until it returns, then the lease is renewed or the entries are rewritten.

The entry carries the health endpoint's address while the health component
has one (``NodeEntry.set_health``); this module is the entry's only writer,
so a change made before the first write is never lost to it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from axoneme.k8s.clusternode import API_VERSION
from axoneme.k8s.objects import parse_node
from axoneme.store.leased import LeasedStore, keep_lease
from axoneme.store.types import Key, Resource, Store, StoreError

if TYPE_CHECKING:
    from axoneme.agent.daemon import AgentContext

log = logging.getLogger(__name__)

# Kinds only the node that hosts them writes (Cilium's node-owned kvstore keys).
OWNED_KINDS = frozenset({"ClusterNode", "CiliumEndpoint"})
NODE_ENTRY_KIND = "ClusterNode"


def node_owned(obj: Resource) -> bool:
    return obj.get("kind") in OWNED_KINDS


def node_entry(
    node: str, ip: str, pod_cidrs: list[str], ttl: int, health_ipv4: str = ""
) -> Resource:
    spec: dict[str, Any] = {
        "addresses": [{"type": "InternalIP", "ip": ip}] if ip else [],
        "podCIDRs": pod_cidrs,
        "leaseTTLSeconds": ttl,
    }
    if health_ipv4:
        spec["health"] = {"ipv4": health_ipv4}  # CiliumNode's spec.health.ipv4
    return {
        "apiVersion": API_VERSION,
        "kind": NODE_ENTRY_KIND,
        "metadata": {"name": node},
        "spec": spec,
    }


class NodeEntry:
    """What the agent's components add to this node's entry (only the health address)."""

    def __init__(self) -> None:
        self.health_ipv4 = ""
        self.changed = asyncio.Event()

    def set_health(self, ipv4: str) -> None:
        """Publish (or with "" withdraw) the health endpoint's address."""
        if ipv4 != self.health_ipv4:
            self.health_ipv4 = ipv4
            self.changed.set()


def own_endpoint(cep: Resource, addresses: dict[tuple[str, str], str]) -> bool:
    """True when ``cep`` describes one of our endpoints (same pod, same address)."""
    meta = cep.get("metadata", {})
    want = addresses.get((meta.get("namespace", ""), meta.get("name", "")))
    if not want:
        return False
    addressing = cep.get("status", {}).get("networking", {}).get("addressing", [])
    return any(isinstance(a, dict) and a.get("ipv4") == want for a in addressing)


async def _retry(what: str, call: Any) -> Any:
    warned = False
    while True:
        try:
            return await call()
        except StoreError as exc:
            if not warned:
                log.warning("%s: %s; retrying", what, exc)
                warned = True
            await asyncio.sleep(1.0)


async def adopt(store: LeasedStore, addresses: dict[tuple[str, str], str]) -> int:
    """Remember the stored CiliumEndpoints of our restored endpoints; how many."""
    listing = await _retry("listing endpoints", lambda: store.list("CiliumEndpoint"))
    count = 0
    for cep in listing.items:
        if own_endpoint(cep, addresses):
            store.remember(cep)
            count += 1
    return count


async def run(ctx: AgentContext) -> None:
    store: Store = ctx.store
    if not isinstance(store, LeasedStore):
        return
    config = ctx.config
    addresses = {(ep.namespace, ep.pod): ep.ipv4 for ep in ctx.manager.endpoints() if ep.namespace}
    adopted = await adopt(store, addresses)
    raw = await _retry("reading the Node", lambda: store.get(Key("Node", "", config.node)))
    ip = parse_node(raw).internal_ip if raw else ""
    wanted = ctx.node_entry

    def entry() -> Resource:
        return node_entry(
            config.node, ip, [ctx.service.pod_cidr], config.lease_ttl, wanted.health_ipv4
        )

    wanted.changed.clear()
    store.remember(entry())  # written by keep_lease under the lease it grants
    log.info("node lease: %d restored endpoint(s) adopted, ttl %ds", adopted, config.lease_ttl)
    ctx.service.node_lease = lambda: store.report(config.lease_ttl)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(keep_lease(store, config.lease_ttl), name="node-lease")
        tg.create_task(publish_changes(store, wanted, entry), name="node-entry")


async def publish_changes(
    store: LeasedStore, wanted: NodeEntry, entry: Callable[[], Resource]
) -> None:
    """Write the entry again whenever a component changes what it carries."""
    while True:
        await wanted.changed.wait()
        wanted.changed.clear()
        current = entry()
        store.remember(current)  # a lease lost meanwhile rewrites this version
        await _retry("writing the node entry", functools.partial(store.put, current))
        log.info("node entry: health endpoint %s", wanted.health_ipv4 or "withdrawn")
