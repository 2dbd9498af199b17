"""The operator against a real etcd: election takeover on etcd's lease expiry, and the
re-install trap (CiliumNodes left from another pod CIDR config) reported, not renumbered."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from axoneme.operator.clusterpool import parse_pool_config
from axoneme.operator.election import Elector, leader_of
from axoneme.operator.main import Operator, OperatorConfig
from axoneme.store.etcd import EtcdStore
from axoneme.store.types import Key


def node(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def operator(store: EtcdStore, cidr: str) -> Operator:
    config = OperatorConfig(store="", identity="t", pool=parse_pool_config([cidr], 24))
    return Operator(config, store)


def test_takeover_after_the_leader_stops_renewing(etcd: str) -> None:
    async def run() -> None:
        a_store, b_store = EtcdStore(etcd), EtcdStore(etcd)
        try:
            a = Elector(a_store, "op", "a", 2, retry=0.2)
            b = Elector(b_store, "op", "b", 2, retry=0.2)

            async def idle() -> None:
                await asyncio.Event().wait()

            ta = asyncio.ensure_future(a.run(idle))
            await asyncio.wait_for(a.leading.wait(), 5)
            tb = asyncio.ensure_future(b.run(idle))
            await asyncio.sleep(3)  # longer than the TTL: a's renewals hold
            assert not b.leading.is_set() and await leader_of(b_store, "op") == "a"
            ta.cancel()  # dies without resigning
            await asyncio.gather(ta, return_exceptions=True)
            stopped = time.monotonic()
            await asyncio.wait_for(b.leading.wait(), 6)
            took = time.monotonic() - stopped
            assert took <= 2 + 0.2 + 1.5, took  # TTL + retry + etcd's expiry granularity
            assert await leader_of(b_store, "op") == "b"
            tb.cancel()
            await asyncio.gather(tb, return_exceptions=True)
            await b.resign()
            assert await leader_of(b_store, "op") is None
        finally:
            await a_store.close()
            await b_store.close()

    asyncio.run(run())


def test_reinstall_with_another_pool_reports_what_to_clean(etcd: str) -> None:
    async def run() -> None:
        store = EtcdStore(etcd)
        try:
            await store.put(node("node1", "172.30.0.11"))
            await operator(store, "10.0.0.0/16").sync_nodes()  # the first install
            first = await store.get(Key("CiliumNode", "", "node1"))
            assert first is not None and first["spec"]["ipam"]["podCIDRs"] == ["10.0.0.0/24"]
            reinstalled = operator(store, "10.42.0.0/16")
            await reinstalled.sync_nodes()
            after = await store.get(Key("CiliumNode", "", "node1"))
            assert after is not None
            assert after["spec"]["ipam"]["podCIDRs"] == ["10.0.0.0/24"]  # not renumbered
            error = after["status"]["ipam"]["operatorStatus"]["error"]
            assert "allocator not configured for the requested cidr" in error
            assert "axoneme delete ciliumnode node1" in error
            assert "node1" in reinstalled.errors
            # Cleaned as told: the node gets a CIDR of the new pool.
            await store.delete(Key("CiliumNode", "", "node1"))
            await reinstalled.sync_nodes()
            fresh = await store.get(Key("CiliumNode", "", "node1"))
            assert fresh is not None and fresh["spec"]["ipam"]["podCIDRs"] == ["10.42.0.0/24"]
            assert fresh["status"]["ipam"]["operatorStatus"] == {}
            assert "node1" not in reinstalled.errors
        finally:
            await store.close()

    asyncio.run(run())
