"""The agent's node lease: its node entry and endpoints live exactly as long as it does.

At start the agent takes back the CiliumEndpoints of the endpoints it
restored (a previous run wrote them under a lease that dies with it), adds
its ``ClusterNode`` entry, and then holds a lease for all of them
(``store.leased.keep_lease``). If the agent dies, every other node sees its
entries expire after the TTL; if the store goes away, nothing changes here
until it returns, then the lease is renewed or the entries are rewritten.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

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


def node_entry(node: str, ip: str, pod_cidrs: list[str], ttl: int) -> Resource:
    return {
        "apiVersion": "axoneme.io/v1",
        "kind": NODE_ENTRY_KIND,
        "metadata": {"name": node},
        "spec": {
            "addresses": [{"type": "InternalIP", "ip": ip}] if ip else [],
            "podCIDRs": pod_cidrs,
            "leaseTTLSeconds": ttl,
        },
    }


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
    store.remember(node_entry(config.node, ip, [ctx.service.pod_cidr], config.lease_ttl))
    log.info("node lease: %d restored endpoint(s) adopted, ttl %ds", adopted, config.lease_ttl)
    ctx.service.node_lease = lambda: store.report(config.lease_ttl)
    await keep_lease(store, config.lease_ttl)
