"""sessionAffinity: ClientIP for NodePort traffic from outside, at tc (2-node lab).

Three backends (two on node1, one on node2) behind a NodePort with a 1-second
affinity timeout: every new connection from the world namespace (a new source
port each time) reaches the same backend while it keeps coming, a new choice
is made after the timeout, and the choice sits in ``axo_lb_affinity`` keyed
by the client's address. A NodePort without affinity over the same pods
spreads, so the stickiness is the affinity's doing.
test_privileged_nodeport_xdp.py checks the same in XDP.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

import pytest

from axoneme.datapath.linux import bpfsys
from axoneme.lab.topology import BPF_PIN_ROOT, WORLD_IP
from privileged.helpers import (
    apply,
    namespace,
    node_ips,
    node_port_service,
    pod_manifest,
    wait_for,
    wait_pods,
    world_http,
)

pytestmark = [pytest.mark.lab]

NS = "np-affinity"
LB_AFFINITY_CLIENT_IP = 1 << 63  # lib/lb.h: a north-south client, by address


def served_by(ip: str, port: int) -> str:
    """The pod that served one HTTP request from the world (a new source port)."""
    return str(world_http(ip, port, timeout=3)["name"])


def deploy(lab: dict[str, Any]) -> dict[str, str]:
    """web-1 and web-3 on node1, web-2 on node2; a sticky and a plain NodePort."""
    web = [(1, "node1"), (2, "node2"), (3, "node1")]
    apply(
        namespace(NS),
        *[pod_manifest(NS, f"web-{i}", node, {"app": "web"}, [(8080, "TCP")]) for i, node in web],
        node_port_service(NS, "sticky", {"app": "web"}, 31580, sessionAffinity="ClientIP",
                          sessionAffinityConfig={"clientIP": {"timeoutSeconds": 1}}),
        node_port_service(NS, "plain", {"app": "web"}, 31680),
    )  # fmt: skip
    wait_pods(NS, {"web-1", "web-2", "web-3"})
    ips = node_ips(lab)

    def all_serving() -> bool:
        try:
            return len({served_by(ips["node1"], 31680) for _ in range(30)}) == 3
        except OSError:
            return False

    wait_for(all_serving, 30, "the plain NodePort reaching all three backends")
    return ips


def world_affinity_entries(node: str) -> list[tuple[int, int]]:
    """(service id, backend id) of axo_lb_affinity entries keyed by the world's address."""
    client = LB_AFFINITY_CLIENT_IP | int.from_bytes(socket.inet_aton(WORLD_IP), "little")
    with bpfsys.BpfMap.open_pinned(BPF_PIN_ROOT / node / "axo_lb_affinity") as m:
        entries = m.lookup_batch()
    found = []
    for key, value in entries:
        who, svc_id, _ = struct.unpack("=QII", key)
        _, backend_id, _ = struct.unpack("=QII", value)
        if who == client:
            found.append((svc_id, backend_id))
    return found


def check_sticky_then_rechosen(ip: str) -> None:
    # 1-second timeout, refreshed by each new connection: 30 quick ones stay put.
    assert len({served_by(ip, 31580) for _ in range(30)}) == 1
    # After each timeout a new choice: 10 rounds over 3 backends see at least two
    # unless the (1/3)^9 chance strikes.
    seen = set()
    for _ in range(10):
        time.sleep(1.2)
        seen.add(served_by(ip, 31580))
    assert len(seen) >= 2, seen


def test_node_port_client_ip_affinity_at_tc(lab: dict[str, Any]) -> None:
    ips = deploy(lab)
    assert world_affinity_entries("node1") == []  # the plain NodePort remembers nothing
    check_sticky_then_rechosen(ips["node1"])
    assert len(world_affinity_entries("node1")) == 1
    assert world_affinity_entries("node2") == []  # the world only dialled node1
