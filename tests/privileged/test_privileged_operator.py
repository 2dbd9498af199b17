"""The operators in a 3-node lab: the leader killed -9 is replaced within a bound and the
new leader registers and removes nodes; a dead node's entries expire on every other node."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from axoneme.lab import control
from axoneme.lab.operators import OPERATOR_LEASE_TTL
from axoneme.lab.supervisor import node_object
from axoneme.lab.topology import LabConfig, node_plans, store_unix_path
from axoneme.operator.election import leader_of
from axoneme.operator.main import ELECTION_NAME
from axoneme.store.etcd import EtcdStore
from axoneme.store.types import Key, Store
from privileged.conftest import lab_config, started_lab
from privileged.helpers import ax, manifest, namespace, pod_manifest, wait_for, wait_pods

pytestmark = [pytest.mark.lab, pytest.mark.slow]

T = TypeVar("T")
NODE_LEASE_TTL = 15  # the agents' default --lease-ttl
# A standby retries every second; allow one more store round trip and process start-up noise.
TAKEOVER_BOUND = OPERATOR_LEASE_TTL + 1.0 + 2.0


def with_store(call: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = EtcdStore(f"unix:{store_unix_path()}")
        try:
            return await call(store)
        finally:
            await store.close()

    return asyncio.run(run())


def names(kind: str) -> set[str]:
    async def run(store: Store) -> set[str]:
        return {o["metadata"]["name"] for o in (await store.list(kind)).items}

    return with_store(run)


def get(kind: str, name: str, ns: str = "") -> dict[str, Any] | None:
    return with_store(lambda s: s.get(Key(kind, ns, name)))


def ipcache(node: str) -> str:
    return ax("bpf", "ipcache", "list", "--node", node).stdout


@pytest.fixture(scope="module")
def lab3(lab_lock: None) -> Iterator[dict[str, Any]]:
    with started_lab(lab_config(nodes=3)) as state:
        yield state


def test_leader_killed_standby_takes_over_within_bound(lab3: dict[str, Any]) -> None:
    leader = wait_for(lambda: with_store(lambda s: leader_of(s, ELECTION_NAME)), 15, "a leader")
    operators = {o["identity"]: o for o in control.require_state()["operators"]}
    assert len(operators) == 2 and leader in operators
    os.kill(operators[leader]["pid"], signal.SIGKILL)
    killed = time.monotonic()

    def new_leader() -> str | None:
        holder = with_store(lambda s: leader_of(s, ELECTION_NAME))
        return holder if holder not in (None, leader) else None

    standby = wait_for(new_leader, TAKEOVER_BOUND + 5, "the standby to lead")
    took = time.monotonic() - killed
    # Usually the standby; the killed one's restarted successor may win the race too.
    print(f"takeover after kill -9 of {leader}: {standby} leads after {took:.1f}s")
    assert took <= TAKEOVER_BOUND, f"takeover took {took:.1f}s > {TAKEOVER_BOUND}s"

    # The new leader works: a node registered gets a CiliumNode with a free CIDR...
    extra = node_object(node_plans(LabConfig(nodes=3))[0])
    extra["metadata"] = {"name": "node-extra"}
    extra["spec"] = {}  # no podCIDR of its own: the cluster pool picks one
    extra["status"] = {"addresses": [{"type": "InternalIP", "address": "172.30.0.99"}]}
    with_store(lambda s: s.create(extra))
    try:
        cn = wait_for(lambda: get("CiliumNode", "node-extra"), 10, "CiliumNode node-extra")
        # 10.42.0.0/24 is the one the lab leaves free (nodes hold .1-.3).
        assert cn["spec"]["ipam"]["podCIDRs"] == ["10.42.0.0/24"]
    finally:
        with_store(lambda s: s.delete(Key("Node", "", "node-extra")))
    # ...and a removed node's CiliumNode goes, releasing the CIDR.
    wait_for(lambda: get("CiliumNode", "node-extra") is None, 10, "CiliumNode removal")
    # The killed operator was restarted: still two processes, one leader.
    state = control.require_state()
    restarted = {o["name"]: o for o in state["operators"]}[leader.split("#")[0]]
    assert restarted["restarts"] == 1 and control.alive(restarted["pid"])
    assert with_store(lambda s: leader_of(s, ELECTION_NAME)) == standby


def test_dead_node_entries_expire_on_every_other_node(lab3: dict[str, Any]) -> None:
    ax(
        "apply",
        "-f",
        "-",
        stdin=manifest(
            namespace("opx"),
            *(pod_manifest("opx", f"p{i}", f"node{i}", {"app": f"p{i}"}, []) for i in (1, 2, 3)),
        ),
    )
    pods = wait_pods("opx", {"p1", "p2", "p3"})
    ip3 = pods["p3"]["status"]["podIP"]
    for node in ("node1", "node2"):
        wait_for(lambda n=node: f"{ip3}/32" in ipcache(n), 15, f"{ip3} in {node}'s ipcache")
    assert "node3" in names("ClusterNode") and "p3" in names("CiliumEndpoint")

    node3 = next(n for n in control.require_state()["nodes"] if n["name"] == "node3")
    agent = int(node3["agentPid"])
    os.kill(agent, signal.SIGSTOP)  # node3's agent dies as far as the cluster can tell
    frozen = time.monotonic()
    try:

        def gone() -> bool:
            return "node3" not in names("ClusterNode") and "p3" not in names("CiliumEndpoint")

        wait_for(gone, NODE_LEASE_TTL + 10, "node3's entries to expire")
        expired = time.monotonic() - frozen
        # Renewed every TTL/3, so the lease ran out between 2/3 TTL and the TTL after the stop.
        assert expired >= NODE_LEASE_TTL * 2 / 3 - 1, f"expired after only {expired:.1f}s"
        for node in ("node1", "node2"):
            wait_for(lambda n=node: f"{ip3}/32" not in ipcache(n), 10, f"{ip3} out of {node}")
        # Live nodes' entries are untouched.
        assert {"p1", "p2"} <= names("CiliumEndpoint")
        assert {"node1", "node2"} <= names("ClusterNode")
        print(f"node3's entries expired {expired:.1f}s after its agent stopped")

        # Node removed from the cluster: the operator releases its CiliumNode.
        with_store(lambda s: s.delete(Key("Node", "", "node3")))
        wait_for(lambda: get("CiliumNode", "node3") is None, 10, "CiliumNode node3 removal")
        # Back again: re-registered, same CIDR (its Node's), entries rewritten under a new lease.
        with_store(lambda s: s.create(node_object(node_plans(LabConfig(nodes=3))[2])))
    finally:
        os.kill(agent, signal.SIGCONT)
    cn = wait_for(lambda: get("CiliumNode", "node3"), 10, "CiliumNode node3")
    assert cn["spec"]["ipam"]["podCIDRs"] == ["10.42.3.0/24"]
    wait_for(lambda: "p3" in names("CiliumEndpoint"), 20, "p3's endpoint rewritten")
    wait_for(lambda: "node3" in names("ClusterNode"), 20, "node3's entry rewritten")
    for node in ("node1", "node2"):
        wait_for(lambda n=node: f"{ip3}/32" in ipcache(n), 15, f"{ip3} back in {node}")
