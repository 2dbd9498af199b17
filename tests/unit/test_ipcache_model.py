"""The desired ipcache of a node, its diff, and the CiliumEndpoint records that feed it."""

from __future__ import annotations

import asyncio
import copy

import pytest

from axoneme.identity.endpoints import (
    EndpointRecord,
    endpoint_ips,
    endpoint_key,
    endpoint_object,
    parse_endpoint,
)
from axoneme.identity.reserved import HEALTH, HOST, REMOTE_NODE, NumericIdentity
from axoneme.ipcache.model import (
    EndpointIP,
    IPCacheEntry,
    NodeAddresses,
    desired_ipcache,
    diff,
)
from axoneme.labels.model import Label
from axoneme.store.memory import MemoryStore

NODES = [
    NodeAddresses("n1", "192.168.0.1", "10.0.1.1"),
    NodeAddresses("n2", "192.168.0.2", "10.0.2.1"),
    NodeAddresses("n3", "192.168.0.3"),
]


def test_nodes_endpoints_and_cidrs() -> None:
    table = desired_ipcache(
        endpoints=[
            EndpointIP("10.0.1.5", 300, "192.168.0.1"),
            EndpointIP("10.0.2.7", 301, "192.168.0.2"),
            EndpointIP("10.0.3.9/32", 300, "192.168.0.3"),
        ],
        nodes=NODES,
        self_node="n1",
        cidr_identities={"8.8.8.0/24": (1 << 24) | 1, "0.0.0.0/0": 2, "1.2.3.4": (1 << 24) | 2},
    )
    assert table == {
        "1.2.3.4/32": IPCacheEntry((1 << 24) | 2, None, "generated"),
        "10.0.1.1/32": IPCacheEntry(HOST, None, "local"),
        "10.0.1.5/32": IPCacheEntry(300, None, "custom-resource"),
        "10.0.2.1/32": IPCacheEntry(REMOTE_NODE, "192.168.0.2", "k8s"),
        "10.0.2.7/32": IPCacheEntry(301, "192.168.0.2", "custom-resource"),
        "10.0.3.9/32": IPCacheEntry(300, "192.168.0.3", "custom-resource"),
        "192.168.0.1/32": IPCacheEntry(HOST, None, "local"),
        "192.168.0.2/32": IPCacheEntry(REMOTE_NODE, None, "k8s"),
        "192.168.0.3/32": IPCacheEntry(REMOTE_NODE, None, "k8s"),
        "8.8.8.0/24": IPCacheEntry((1 << 24) | 1, None, "generated"),
    }


def test_the_same_cluster_seen_from_another_node() -> None:
    table = desired_ipcache([EndpointIP("10.0.1.5", 300, "192.168.0.1")], NODES, "n2", {})
    assert table["10.0.1.5/32"] == IPCacheEntry(300, "192.168.0.1", "custom-resource")
    assert table["192.168.0.1/32"].identity == REMOTE_NODE
    assert table["10.0.1.1/32"] == IPCacheEntry(REMOTE_NODE, "192.168.0.1", "k8s")
    assert table["192.168.0.2/32"].identity == HOST


def test_precedence_when_prefixes_collide() -> None:
    table = desired_ipcache(
        endpoints=[
            # A stale record elsewhere loses to the endpoint on this node.
            EndpointIP("10.0.1.5", 999, "192.168.0.3"),
            EndpointIP("10.0.1.5", 300, "192.168.0.1"),
            # An endpoint never takes over a node address.
            EndpointIP("192.168.0.2", 400, "192.168.0.2"),
            EndpointIP("10.0.1.1", 401, "192.168.0.1"),
            # Between two remote claims the lowest node IP wins, whatever the order.
            EndpointIP("10.9.9.9", 501, "192.168.0.3"),
            EndpointIP("10.9.9.9", 500, "192.168.0.2"),
        ],
        nodes=NODES,
        self_node="n1",
        cidr_identities={"10.9.9.9/32": (1 << 24) | 1},
    )
    assert table["10.0.1.5/32"].identity == 300
    assert table["192.168.0.2/32"].identity == REMOTE_NODE
    assert table["10.0.1.1/32"].identity == HOST
    assert table["10.9.9.9/32"] == IPCacheEntry(500, "192.168.0.2", "custom-resource")


def test_health_endpoints_are_health_on_every_node() -> None:
    nodes = [
        NodeAddresses("n1", "192.168.0.1", "10.0.1.1", "10.0.1.9"),
        NodeAddresses("n2", "192.168.0.2", "10.0.2.1", "10.0.2.9"),
        NodeAddresses("n3", "192.168.0.3"),  # health checking off there
    ]
    endpoints = [
        EndpointIP("10.0.1.9", HEALTH, "192.168.0.1"),  # our own, from the endpoint manager
        EndpointIP("10.0.2.9", 300, "192.168.0.2"),  # a stale CiliumEndpoint for that address
    ]
    table = desired_ipcache(endpoints, nodes, "n1", {})
    assert table["10.0.1.9/32"] == IPCacheEntry(HEALTH, None, "custom-resource")
    # Remote: tunnelled to its node, and the node's word beats the stale record.
    assert table["10.0.2.9/32"] == IPCacheEntry(HEALTH, "192.168.0.2", "custom-resource")
    assert [p for p, e in table.items() if e.identity == HEALTH] == ["10.0.1.9/32", "10.0.2.9/32"]
    seen_from_n2 = desired_ipcache([], nodes, "n2", {})
    assert seen_from_n2["10.0.1.9/32"] == IPCacheEntry(HEALTH, "192.168.0.1", "custom-resource")
    assert seen_from_n2["10.0.2.9/32"] == IPCacheEntry(HEALTH, None, "custom-resource")
    # A health address never takes over a node's own address.
    clash = [
        NodeAddresses("n1", "192.168.0.1"),
        NodeAddresses("n2", "192.168.0.2", None, "192.168.0.1"),
    ]
    assert desired_ipcache([], clash, "n2", {})["192.168.0.1/32"].identity == REMOTE_NODE


def test_world_is_implicit_and_unknown_self_node_is_fine() -> None:
    table = desired_ipcache([], [], "nobody", {"0.0.0.0/0": 2})
    assert table == {}


def test_diff() -> None:
    old = {
        "10.0.0.1/32": IPCacheEntry(300, None),
        "10.0.0.2/32": IPCacheEntry(301, "192.168.0.2"),
        "10.0.0.3/32": IPCacheEntry(302),
    }
    new = {
        "10.0.0.1/32": IPCacheEntry(300, None),
        "10.0.0.2/32": IPCacheEntry(301, "192.168.0.3"),
        "10.0.0.4/32": IPCacheEntry(303),
    }
    upserts, deletes = diff(old, new)
    assert upserts == {"10.0.0.2/32": new["10.0.0.2/32"], "10.0.0.4/32": new["10.0.0.4/32"]}
    assert deletes == ["10.0.0.3/32"]
    assert diff(new, new) == ({}, [])


RECORD = EndpointRecord(
    namespace="shop",
    name="web-1",
    endpoint_id=1234,
    identity=NumericIdentity(300),
    labels=frozenset(
        {Label("k8s", "app", "web"), Label("k8s", "io.kubernetes.pod.namespace", "shop")}
    ),
    ipv4="10.0.1.5",
    node_ip="192.168.0.1",
)


def test_cilium_endpoint_shape_and_round_trip() -> None:
    obj = endpoint_object(RECORD)
    assert obj == {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumEndpoint",
        "metadata": {"name": "web-1", "namespace": "shop"},
        "status": {
            "id": 1234,
            "identity": {
                "id": 300,
                "labels": ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"],
            },
            "networking": {"addressing": [{"ipv4": "10.0.1.5"}], "node": "192.168.0.1"},
            "state": "ready",
        },
    }
    assert parse_endpoint(obj) == RECORD
    assert endpoint_ips([RECORD]) == [EndpointIP("10.0.1.5", 300, "192.168.0.1")]


def test_cilium_endpoints_live_in_the_store_per_namespace() -> None:
    async def run() -> None:
        store = MemoryStore()
        await store.create(endpoint_object(RECORD))
        got = await store.get(endpoint_key("shop", "web-1"))
        assert got is not None and parse_endpoint(got) == RECORD
        assert (await store.list("CiliumEndpoint", "other")).items == []
        assert len((await store.list("CiliumEndpoint")).items) == 1

    asyncio.run(run())


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("status", "identity", "id"), "300", "status.identity.id"),
        (("status", "id"), -1, "status.id"),
        (("status", "networking", "node"), "node-a", "status.networking.node"),
        (("status", "networking", "addressing"), {"ipv4": "x"}, "addressing must be a list"),
        (("status", "identity", "labels"), "k8s:app=web", "labels must be a list"),
    ],
)
def test_malformed_cilium_endpoints(path: tuple[str, ...], value: object, message: str) -> None:
    obj = copy.deepcopy(endpoint_object(RECORD))
    target = obj
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=message):
        parse_endpoint(obj)


def test_missing_fields_and_no_address() -> None:
    obj = endpoint_object(RECORD)
    del obj["status"]["networking"]
    with pytest.raises(ValueError, match=r"status\.networking"):
        parse_endpoint(obj)
    pending = EndpointRecord("d", "p", 1, NumericIdentity(5), frozenset(), "", "192.168.0.1")
    assert parse_endpoint(endpoint_object(pending)).ipv4 == ""
    assert endpoint_ips([pending]) == []
    with pytest.raises(ValueError, match="kind"):
        parse_endpoint({"kind": "Pod"})
