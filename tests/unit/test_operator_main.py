"""The operator's loops on the embedded store: registration, removal, endpoint GC, flags."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from axoneme.operator.clusterpool import parse_pool_config
from axoneme.operator.main import Operator, OperatorConfig, parse_args
from axoneme.store.memory import MemoryStore
from axoneme.store.types import Key


def node(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def cep(name: str, node_ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumEndpoint",
        "metadata": {"name": name, "namespace": "d"},
        "status": {"networking": {"addressing": [{"ipv4": "10.42.0.9"}], "node": node_ip}},
    }


def entry(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "axoneme.io/v1",
        "kind": "ClusterNode",
        "metadata": {"name": name},
        "spec": {"addresses": [{"type": "InternalIP", "ip": ip}]},
    }


def operator(store: MemoryStore, grace: float = 0.0) -> Operator:
    config = OperatorConfig(
        store="unix:/nowhere",
        identity="t",
        pool=parse_pool_config(["10.42.0.0/16"], 24),
        endpoint_gc_grace=grace,
    )
    return Operator(config, store)


def test_registration_then_removal_cleans_what_the_node_owned() -> None:
    async def run() -> None:
        store = MemoryStore()
        op = operator(store)
        for n, ip in (("a", "172.30.0.11"), ("b", "172.30.0.12")):
            await store.put(node(n, ip))
            await store.put(entry(n, ip))
        await store.put(cep("on-b", "172.30.0.12"))
        await store.put(cep("on-a", "172.30.0.11"))
        await op.sync_nodes()
        cidrs = {
            o["metadata"]["name"]: o["spec"]["ipam"]["podCIDRs"]
            for o in (await store.list("CiliumNode")).items
        }
        assert cidrs == {"a": ["10.42.0.0/24"], "b": ["10.42.1.0/24"]}
        await store.delete(Key("Node", "", "b"))
        await op.sync_nodes()
        assert await store.get(Key("CiliumNode", "", "b")) is None
        assert await store.get(Key("ClusterNode", "", "b")) is None
        assert await store.get(Key("CiliumEndpoint", "d", "on-b")) is None
        assert await store.get(Key("CiliumEndpoint", "d", "on-a")) is not None
        # b's CIDR is free again.
        await store.put(node("c", "172.30.0.13"))
        await op.sync_nodes()
        got = await store.get(Key("CiliumNode", "", "c"))
        assert got is not None and got["spec"]["ipam"]["podCIDRs"] == ["10.42.1.0/24"]

    asyncio.run(run())


def test_endpoint_gc_takes_two_passes_and_spares_live_ones() -> None:
    async def run() -> None:
        store = MemoryStore()
        op = operator(store, grace=0.05)
        await store.put(entry("a", "172.30.0.11"))
        await store.put(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "live", "namespace": "d"}}
        )
        await store.put(cep("live", "172.30.0.11"))
        await store.put(cep("orphan", "172.30.0.11"))  # its pod is gone
        await op.collect_endpoints()  # first sighting
        assert await store.get(Key("CiliumEndpoint", "d", "orphan")) is not None
        await asyncio.sleep(0.06)
        await op.collect_endpoints()
        assert await store.get(Key("CiliumEndpoint", "d", "orphan")) is None
        assert await store.get(Key("CiliumEndpoint", "d", "live")) is not None

    asyncio.run(run())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--store", "etcd:1"], "--store: 'etcd:1' must be"),
        (["--store", "unix:/x", "--lease-ttl", "1"], "--lease-ttl: 1 must be between"),
        (["--store", "unix:/x", "--identity-gc-grace", "0"], "--identity-gc-grace: must be"),
        (
            ["--store", "unix:/x", "--cluster-pool-ipv4-pod-cidr-list", "10.0.0.0/8,bad"],
            r"clusterPoolIPv4PodCIDRList\[1\]",
        ),
        (
            ["--store", "unix:/x", "--cluster-pool-ipv4-mask-size", "4"],
            "clusterPoolIPv4MaskSize",
        ),
    ],
)
def test_bad_flags_are_named(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert re.search(message, capsys.readouterr().err)
