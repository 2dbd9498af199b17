"""Multi-pool IPAM in the lab: a CiliumPodIPPool shared out by the operator, pods picking
it by pod or namespace annotation, reachable across nodes; an unknown pool fails clearly."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any

import pytest

from axoneme.lab.topology import store_unix_path
from axoneme.store.etcd import EtcdStore
from axoneme.store.types import Key
from privileged.helpers import ax, manifest, namespace, pod_manifest, pods, wait_for, wait_pods

pytestmark = [pytest.mark.lab, pytest.mark.slow]

POOL = {
    "apiVersion": "cilium.io/v2alpha1",
    "kind": "CiliumPodIPPool",
    "metadata": {"name": "blue"},
    "spec": {"ipv4": {"cidrs": ["10.77.0.0/16"], "maskSize": 26}},
}
ANNOTATION = "ipam.cilium.io/ip-pool"


def store_call(fn: Any) -> Any:
    async def run() -> Any:
        store = EtcdStore(f"unix:{store_unix_path()}")
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(run())


def blue_share(node: str) -> str | None:
    obj = store_call(lambda s: s.get(Key("CiliumNode", "", node)))
    for entry in (obj or {}).get("spec", {}).get("ipam", {}).get("pools", {}).get("allocated", []):
        if entry.get("pool") == "blue" and entry.get("cidrs"):
            return str(entry["cidrs"][0])
    return None


def annotated(obj: dict[str, Any], pool: str) -> dict[str, Any]:
    obj["metadata"]["annotations"] = {ANNOTATION: pool}
    return obj


def inside(ip: str, cidr: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


def test_pods_get_addresses_from_their_pool(lab: dict[str, Any]) -> None:
    store_call(lambda s: s.put(POOL))
    shares = {
        n: wait_for(lambda n=n: blue_share(n), 15, f"{n}'s share of pool blue")
        for n in ("node1", "node2")
    }
    assert shares["node1"] != shares["node2"]
    assert all(
        inside(str(ipaddress.ip_network(c).network_address), "10.77.0.0/16")
        for c in shares.values()
    )

    ax(
        "apply",
        "-f",
        "-",
        stdin=manifest(
            annotated(namespace("ipp"), "blue"),
            namespace("ipp2"),
            pod_manifest("ipp", "nsblue", "node1", {"app": "nsblue"}, [(80, "TCP")]),
            annotated(pod_manifest("ipp2", "podblue", "node2", {"app": "podblue"}, []), "blue"),
            pod_manifest("ipp2", "plain", "node2", {"app": "plain"}, [(80, "TCP")]),
        ),
    )
    wait_pods("ipp", {"nsblue"})
    running = wait_pods("ipp2", {"podblue", "plain"})
    nsblue = pods("ipp")["nsblue"]["status"]["podIP"]
    assert inside(nsblue, shares["node1"]), (nsblue, shares)
    assert inside(running["podblue"]["status"]["podIP"], shares["node2"])
    assert inside(running["plain"]["status"]["podIP"], "10.42.2.0/24")

    # Across nodes both ways, between pools and the default range.
    assert ax("probe", "ipp2/plain", "ipp/nsblue:80/TCP").stdout.split()[-1] != "timeout"
    assert ax("probe", "ipp2/podblue", "ipp/nsblue:80/TCP", check=False).returncode == 0
    assert ax("probe", "ipp/nsblue", "ipp2/plain:80/TCP", check=False).returncode == 0
    # Same node, pool to default range.
    assert ax("probe", "ipp2/podblue", "ipp2/plain:80/TCP", check=False).returncode == 0


def test_an_unknown_pool_fails_the_pod_clearly(lab: dict[str, Any]) -> None:
    ax(
        "apply",
        "-f",
        "-",
        stdin=manifest(
            namespace("ipp3"),
            annotated(pod_manifest("ipp3", "red", "node1", {"app": "red"}, []), "red"),
        ),
    )

    def failed() -> dict[str, Any] | None:
        status = pods("ipp3").get("red", {}).get("status", {})
        return status if status.get("reason") == "FailedCreatePodSandBox" else None

    status = wait_for(failed, 30, "the pod to fail")
    # The CLI shows and deletes the control plane's resources by name.
    shown = json.loads(ax("get", "ciliumnodes", "-o", "json").stdout)["items"]
    assert {"node1", "node2"} <= {n["metadata"]["name"] for n in shown}
    missing = ax("delete", "clusternode", "no-such-node", check=False)
    assert missing.returncode == 1 and "clusternode/no-such-node not found" in missing.stderr
    unknown = ax("delete", "gizmo", "x", check=False)
    assert unknown.returncode != 0 and "resource type 'gizmo' is not known" in unknown.stderr
    assert status["phase"] == "Pending"
    assert "IP pool 'red' has no CIDR on this node" in status.get("message", ""), status
    ax("delete", "-f", "-", stdin=manifest(namespace("ipp3")), check=False)
