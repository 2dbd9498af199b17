"""``axoneme-operator``: the composition root of the cluster-wide operator.

Several may run; leader election on a store lease picks the one that works.
The leader runs three loops until its term ends: node registration with
cluster-pool and multi-pool IPAM, stale CiliumEndpoint GC, and identity GC.
Each pass reads the store afresh, so a new leader needs no hand-over.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from axoneme.identity.allocator import collect_garbage
from axoneme.operator import gc
from axoneme.operator.clusterpool import PoolConfig, PoolConfigError, parse_pool_config
from axoneme.operator.election import Elector
from axoneme.operator.multipool import POOL_KIND, IPPool, parse_ip_pool
from axoneme.operator.nodes import CILIUM_NODE_KIND, ciliumnode_ip, plan_nodes
from axoneme.store.etcd import EtcdStore
from axoneme.store.types import Key, Resource, Store, StoreError

log = logging.getLogger("axoneme.operator")

ELECTION_NAME = "axoneme-operator"


@dataclass(frozen=True)
class OperatorConfig:
    store: str
    identity: str
    pool: PoolConfig
    lease_ttl: int = 15
    retry: float = 1.0
    sync_interval: float = 1.0
    endpoint_gc_interval: float = 5.0
    endpoint_gc_grace: float = 10.0
    identity_gc_interval: float = 30.0
    identity_gc_grace: float = 60.0


class Operator:
    def __init__(self, config: OperatorConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.errors: dict[str, str] = {}
        self._suspects = gc.Suspects(config.endpoint_gc_grace)

    async def work(self) -> None:
        """What the leader does, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._every(self.config.sync_interval, self.sync_nodes), name="nodes")
            tg.create_task(
                self._every(self.config.endpoint_gc_interval, self.collect_endpoints),
                name="endpoint-gc",
            )
            tg.create_task(
                self._every(self.config.identity_gc_interval, self.collect_identities),
                name="identity-gc",
            )

    @staticmethod
    async def _every(period: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except StoreError as exc:
                log.warning("%s: %s", getattr(step, "__name__", "step"), exc)
            await asyncio.sleep(period)

    async def _pools(self) -> list[IPPool]:
        pools = []
        for obj in (await self.store.list(POOL_KIND)).items:
            try:
                pools.append(parse_ip_pool(obj))
            except PoolConfigError as exc:
                self._report(f"pool:{obj.get('metadata', {}).get('name')}", str(exc))
        return pools

    def _report(self, what: str, error: str) -> None:
        if self.errors.get(what) != error:
            log.error("%s", error)
        self.errors[what] = error

    async def sync_nodes(self) -> None:
        nodes = (await self.store.list("Node")).items
        ciliumnodes = (await self.store.list(CILIUM_NODE_KIND)).items
        plan = plan_nodes(self.config.pool, await self._pools(), nodes, ciliumnodes)
        for name, error in plan.errors.items():
            self._report(name, error)
        for name in [n for n in self.errors if n not in plan.errors and ":" not in n]:
            del self.errors[name]
        for obj in plan.puts:
            await self.store.put(obj)
            log.info(
                "CiliumNode %s: pod CIDRs %s",
                obj["metadata"]["name"],
                obj["spec"]["ipam"]["podCIDRs"],
            )
        for obj in plan.deletes:
            await self.remove_node(obj)

    async def remove_node(self, ciliumnode: Resource) -> None:
        """A Node is gone: release its CIDRs and remove what it owned in the store."""
        name = str(ciliumnode["metadata"]["name"])
        ip = ciliumnode_ip(ciliumnode)
        removed = 0
        if ip:
            for cep in (await self.store.list("CiliumEndpoint")).items:
                if cep.get("status", {}).get("networking", {}).get("node") == ip:
                    await self.store.delete(Key.of(cep))
                    removed += 1
        await self.store.delete(Key("ClusterNode", "", name))
        await self.store.delete(Key(CILIUM_NODE_KIND, "", name))
        log.info("node %s removed: CIDRs released, %d endpoint(s) deleted", name, removed)

    async def collect_endpoints(self) -> None:
        live = gc.live_nodes((await self.store.list("ClusterNode")).items)
        ceps = (await self.store.list("CiliumEndpoint")).items
        pods = (await self.store.list("Pod")).items
        stale = gc.stale_endpoints(ceps, pods, set(live.values()))
        for key in self._suspects.due(stale, time.monotonic()):
            await self.store.delete(key)
            log.info("endpoint GC: deleted %s (%s)", key, stale[key])

    async def collect_identities(self) -> None:
        live = gc.live_nodes((await self.store.list("ClusterNode")).items)
        removed = await collect_garbage(self.store, list(live), grace=self.config.identity_gc_grace)
        if removed:
            log.info("identity GC removed %s", ", ".join(map(str, removed)))


def parse_args(argv: list[str] | None = None) -> OperatorConfig:
    p = argparse.ArgumentParser(prog="axoneme-operator", description="Axoneme cluster operator")
    p.add_argument("--store", required=True, help="etcd endpoint: http://HOST:PORT or unix:PATH")
    p.add_argument(
        "--id", default=f"{socket.gethostname()}-{os.getpid()}", help="this operator's identity"
    )
    p.add_argument(
        "--cluster-pool-ipv4-pod-cidr-list",
        default="10.42.0.0/16",
        help="comma-separated cluster pod CIDRs (clusterPoolIPv4PodCIDRList)",
    )
    p.add_argument(
        "--cluster-pool-ipv4-mask-size",
        type=int,
        default=24,
        help="each node's pod CIDR size (clusterPoolIPv4MaskSize)",
    )
    p.add_argument("--lease-ttl", type=int, default=15, help="leader election lease TTL (s)")
    p.add_argument("--identity-gc-interval", type=float, default=30.0)
    p.add_argument("--identity-gc-grace", type=float, default=60.0)
    p.add_argument("--endpoint-gc-interval", type=float, default=5.0)
    p.add_argument("--endpoint-gc-grace", type=float, default=10.0)
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    ns = p.parse_args(argv)
    if not ns.store.startswith(("http://", "unix:")):
        p.error(f"--store: {ns.store!r} must be http://HOST:PORT or unix:PATH")
    if not 2 <= ns.lease_ttl <= 3600:
        p.error(f"--lease-ttl: {ns.lease_ttl} must be between 2 and 3600 seconds")
    for flag in ("identity_gc_interval", "identity_gc_grace", "endpoint_gc_interval"):
        if getattr(ns, flag) <= 0:
            p.error(f"--{flag.replace('_', '-')}: must be positive")
    try:
        pool = parse_pool_config(
            [c for c in ns.cluster_pool_ipv4_pod_cidr_list.split(",") if c.strip()],
            ns.cluster_pool_ipv4_mask_size,
        )
    except PoolConfigError as exc:
        p.error(str(exc))
    logging.getLogger().setLevel(ns.log_level)
    return OperatorConfig(
        store=ns.store,
        identity=ns.id,
        pool=pool,
        lease_ttl=ns.lease_ttl,
        endpoint_gc_interval=ns.endpoint_gc_interval,
        endpoint_gc_grace=ns.endpoint_gc_grace,
        identity_gc_interval=ns.identity_gc_interval,
        identity_gc_grace=ns.identity_gc_grace,
    )


async def run(config: OperatorConfig) -> int:
    store = EtcdStore(config.store)
    operator = Operator(config, store)
    elector = Elector(store, ELECTION_NAME, config.identity, config.lease_ttl, retry=config.retry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("operator %s campaigning for %s", config.identity, ELECTION_NAME)
    campaign = asyncio.ensure_future(elector.run(operator.work))
    try:
        await asyncio.wait(
            {campaign, asyncio.ensure_future(stop.wait())}, return_when="FIRST_COMPLETED"
        )
        if campaign.done():
            campaign.result()
    finally:
        campaign.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await campaign
        await elector.resign()  # a graceful stop hands over at once
        await store.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    config = parse_args(argv)
    sys.exit(asyncio.run(run(config)))


if __name__ == "__main__":
    main()
