"""Control plane without root: resources in, datapath state out.

A MemoryStore holds the cluster, FakeDriver stands in for netlink and
FakeDatapath for the BPF maps; the agent's Enforcement runs for real.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from axoneme.agent.enforcement import Enforcement
from axoneme.agent.nodelease import node_entry
from axoneme.datapath.fake import FakeDatapath, FakeDriver
from axoneme.datapath.types import IPCacheEntry
from axoneme.endpoint.manager import EndpointManager, PodInfo
from axoneme.identity.reserved import HEALTH, HOST, REMOTE_NODE
from axoneme.k8s.apply import new_object
from axoneme.k8s.objects import parse_namespace, parse_pod
from axoneme.policy.mapstate import DIR_INGRESS, FLAG_INGRESS_ENFORCED
from axoneme.store.memory import MemoryStore
from axoneme.store.types import Key, WatchEvent

NODE = "node1"


def node(name: str, ip: str, cidr: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def pod(name: str, labels: dict[str, str], port_name: str = "http") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "d", "labels": labels},
        "spec": {
            "nodeName": NODE,
            "containers": [
                {"name": "c", "image": "x", "ports": [{"containerPort": 8080, "name": port_name}]}
            ],
        },
    }


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.store = MemoryStore()
        self.driver = FakeDriver()
        self.datapath = FakeDatapath()
        self.manager = EndpointManager(tmp / "state.json", "10.42.1.0/24", self.driver)
        self.enf = Enforcement(NODE, self.store, self.manager, self.datapath)

    async def start(self) -> None:
        for obj in (
            node(NODE, "172.30.0.11", "10.42.1.0/24"),
            node("node2", "172.30.0.12", "10.42.2.0/24"),
            ns("d"),
        ):
            await self.store.create(new_object(obj))
        await self.enf.on_sync(await self.store.list_all())

    async def add_pod(self, raw: dict[str, Any]) -> int:
        stored = await self.store.create(new_object(raw))
        p = parse_pod(stored)
        namespace = parse_namespace((await self.store.list("Namespace")).items[0])
        labels = self.enf.labels_for(p, namespace)
        identity = await self.enf.allocate(labels)
        ep = self.manager.add(
            f"c-{p.name}",
            "eth0",
            f"/run/netns/{p.name}",
            PodInfo(p.namespace, p.name, p.labels, identity),
        )
        await self.enf.endpoint_ready(ep, labels)
        await self.catch_up()
        return ep.id

    async def catch_up(self) -> None:
        listing = await self.store.list_all()
        await self.enf.on_sync(listing)
        await self.enf.regenerate()


def test_endpoints_get_identities_ipcache_and_default_allow(tmp_path: Path) -> None:
    async def run() -> None:
        c = Cluster(tmp_path)
        await c.start()
        web = await c.add_pod(pod("web", {"app": "web"}))
        cli = await c.add_pod(pod("cli", {"app": "cli"}))
        eps = {e.id: e for e in c.manager.endpoints()}
        assert eps[web].identity != eps[cli].identity
        assert eps[web].identity is not None and eps[web].identity >= 256
        # Programs are attached on each endpoint's host device, lxc entries exist.
        assert {e.host_ifindex for e in eps.values()} == c.datapath.attached
        lxc = {entry.ep_id: entry for entry in c.datapath.lxc.values()}
        assert lxc[web].identity == eps[web].identity and lxc[web].flags == 0
        # ipcache: both pods, this node as host, the other node as remote-node.
        assert c.datapath.ipcache[f"{eps[web].ipv4}/32"].identity == eps[web].identity
        assert c.datapath.ipcache["172.30.0.11/32"].identity == HOST
        assert c.datapath.ipcache["172.30.0.12/32"].identity == REMOTE_NODE
        assert c.datapath.ipcache["10.42.2.1/32"].identity == REMOTE_NODE
        # Published for the other nodes.
        ceps = (await c.store.list("CiliumEndpoint")).items
        assert {o["metadata"]["name"] for o in ceps} == {"web", "cli"}

    asyncio.run(run())


def test_policy_selects_and_programs_the_maps(tmp_path: Path) -> None:
    async def run() -> None:
        c = Cluster(tmp_path)
        await c.start()
        web = await c.add_pod(pod("web", {"app": "web"}))
        cli = await c.add_pod(pod("cli", {"app": "cli"}))
        policy = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": {"app": "cli"}}}],
                        "ports": [{"port": "http"}],
                    }
                ],
            },
        }
        written = await c.store.create(new_object(policy))
        await c.catch_up()
        revision = int(written["metadata"]["resourceVersion"])
        assert c.enf.realized_revision >= revision
        flags = {e.ep_id: e.flags for e in c.datapath.lxc.values()}
        assert flags[web] & FLAG_INGRESS_ENFORCED and not flags[cli] & FLAG_INGRESS_ENFORCED
        cli_identity = next(e.identity for e in c.manager.endpoints() if e.id == cli)
        state = c.datapath.policy
        set_id = state.by_identity[(cli_identity, web, DIR_INGRESS)]
        # The named port "http" resolved to 8080/TCP for the allowed peer.
        tcp_8080 = (6 << 16) | 8080
        assert any(lo <= tcp_8080 <= hi for lo, hi in state.port_sets[set_id].allow)
        assert c.enf.enforcement_of(web) == {"ingress": "Enabled", "egress": "Disabled"}
        # Deleting the policy removes every entry and the enforcement flag.
        await c.store.delete(Key("NetworkPolicy", "d", "web"))
        await c.catch_up()
        assert c.datapath.policy.by_identity == {}
        assert all(e.flags == 0 for e in c.datapath.lxc.values())

    asyncio.run(run())


def test_label_change_moves_the_endpoint_to_a_new_identity(tmp_path: Path) -> None:
    async def run() -> None:
        c = Cluster(tmp_path)
        await c.start()
        web = await c.add_pod(pod("web", {"app": "web"}))
        before = next(e.identity for e in c.manager.endpoints() if e.id == web)
        stored = await c.store.list("Pod", "d")
        obj = stored.items[0]
        obj["metadata"]["labels"] = {"app": "web", "tier": "front"}
        await c.store.put(obj)
        await c.catch_up()
        after = next(e.identity for e in c.manager.endpoints() if e.id == web)
        assert after != before
        lxc = {entry.ep_id: entry for entry in c.datapath.lxc.values()}
        assert lxc[web].identity == after

    asyncio.run(run())


def test_removed_endpoint_releases_its_identity_reference(tmp_path: Path) -> None:
    async def run() -> None:
        c = Cluster(tmp_path)
        await c.start()
        await c.add_pod(pod("web", {"app": "web"}))
        # A regeneration racing with the ADD must not take a second reference.
        await c.enf.regenerate()
        assert sum(c.enf.allocator.refcounts().values()) == 1
        ep = c.manager.endpoints()[0]
        c.manager.delete(ep.container_id, ep.ifname)
        await c.enf.endpoint_removed(ep)
        assert sum(c.enf.allocator.refcounts().values()) == 0
        assert (await c.store.list("CiliumEndpoint")).items == []

    asyncio.run(run())


def test_node_entries_give_health_endpoints_the_health_identity(tmp_path: Path) -> None:
    async def run() -> None:
        c = Cluster(tmp_path)
        await c.start()
        for name, ip, cidr, health in (
            ("node1", "172.30.0.11", "10.42.1.0/24", "10.42.1.9"),
            ("node2", "172.30.0.12", "10.42.2.0/24", "10.42.2.9"),
        ):
            await c.store.put(node_entry(name, ip, [cidr], 15, health))
        await c.catch_up()
        assert c.datapath.ipcache["10.42.2.9/32"] == IPCacheEntry(HEALTH, "172.30.0.12")
        assert c.datapath.ipcache["10.42.1.9/32"] == IPCacheEntry(HEALTH, "0.0.0.0")  # ours

        # An update naming an address outside the node's pod CIDR (a pod of node1's)
        # is ignored: the last valid entry stays.
        bad = node_entry("node2", "172.30.0.12", ["10.42.2.0/24"], 15, "10.42.1.50")
        await c.enf.on_event(WatchEvent("MODIFIED", bad, c.enf.seen_revision + 1))
        await c.enf.regenerate()
        assert "10.42.1.50/32" not in c.datapath.ipcache
        assert c.datapath.ipcache["10.42.2.9/32"].identity == HEALTH

        # Health checking turned off on node2, then back on, then node2 gone.
        await c.store.put(node_entry("node2", "172.30.0.12", ["10.42.2.0/24"], 15))
        await c.catch_up()
        assert "10.42.2.9/32" not in c.datapath.ipcache
        back = node_entry("node2", "172.30.0.12", ["10.42.2.0/24"], 15, "10.42.2.9")
        written = await c.store.put(back)
        await c.enf.on_event(WatchEvent("MODIFIED", written, c.enf.seen_revision + 1))
        await c.enf.regenerate()
        assert c.datapath.ipcache["10.42.2.9/32"].identity == HEALTH
        await c.store.delete(Key("ClusterNode", "", "node2"))
        await c.enf.on_event(WatchEvent("DELETED", written, c.enf.seen_revision + 1))
        await c.enf.regenerate()
        assert "10.42.2.9/32" not in c.datapath.ipcache
        assert c.datapath.ipcache["10.42.1.9/32"].identity == HEALTH

    asyncio.run(run())
