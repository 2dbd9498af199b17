"""Where the agent's pod CIDR comes from: the CiliumNode (cluster-pool) or the Node (kubernetes)."""

from __future__ import annotations

import asyncio

import pytest

from axoneme.agent.config import parse_args
from axoneme.agent.daemon import wait_for_pod_cidr
from axoneme.store.memory import MemoryStore


def node(pod_cidr: str | None) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {"podCIDR": pod_cidr} if pod_cidr else {},
    }


def ciliumnode(cidrs: list[str]) -> dict[str, object]:
    return {"kind": "CiliumNode", "metadata": {"name": "n1"}, "spec": {"ipam": {"podCIDRs": cidrs}}}


def test_each_mode_reads_its_own_source() -> None:
    async def run() -> None:
        store = MemoryStore()
        await store.put(node("10.42.1.0/24"))
        await store.put(ciliumnode(["10.50.0.0/24"]))
        assert await wait_for_pod_cidr(store, "n1", "kubernetes") == "10.42.1.0/24"
        assert await wait_for_pod_cidr(store, "n1", "cluster-pool") == "10.50.0.0/24"

    asyncio.run(run())


def test_cluster_pool_waits_for_the_operator() -> None:
    async def run() -> None:
        store = MemoryStore()
        await store.put(node("10.42.1.0/24"))  # not used in cluster-pool mode
        waiting = asyncio.ensure_future(wait_for_pod_cidr(store, "n1", "cluster-pool"))
        await asyncio.sleep(0.7)
        assert not waiting.done()
        await store.put(ciliumnode(["10.50.0.0/24"]))
        assert await asyncio.wait_for(waiting, 3) == "10.50.0.0/24"

    asyncio.run(run())


def test_ipam_flag_is_checked() -> None:
    assert parse_args(["--node", "n", "--store", "embedded:/x"]).ipam == "kubernetes"
    assert parse_args(["--node", "n", "--store", "embedded:/x", "--ipam", "cluster-pool"]).ipam == (
        "cluster-pool"
    )
    with pytest.raises(SystemExit):
        parse_args(["--node", "n", "--store", "embedded:/x", "--ipam", "crd"])
