"""NodePort acceleration: bpf_xdp.c in native XDP on each node's eth0, a 2-node lab
started with ``--nodeport-acceleration native``.

Clients are sockets in the world namespace (outside the cluster). The XDP
program's per-CPU counters (``axo_xdp_stats``) tell whether XDP served the
packets: forwarded (translated and sent back out with XDP_TX, never entering
the node's stack) for a backend on the other node, translated and passed to
the stack for a backend on the dialled node, passed to tc (which answers with
ICMP) for a frontend without backends (dropped in XDP under the drop mode:
test_privileged_nodeport_drop_mode.py).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from axoneme.datapath.linux import xdplb
from axoneme.kit.ethtool import get_gro
from axoneme.lab.topology import BPF_PIN_ROOT, LAB_NETNS, WORLD_IP
from privileged.conftest import lab_config, started_lab
from privileged.helpers import (
    apply,
    ax,
    namespace,
    node_ips,
    node_port_service,
    pod_manifest,
    wait_for,
    wait_pods,
    world_http,
    world_refused,
    world_udp,
)

pytestmark = [pytest.mark.lab]

NS = "xdp-test"


@pytest.fixture(scope="module")
def accelerated_lab(lab_lock: None) -> Iterator[dict[str, Any]]:
    with started_lab(lab_config(nodeport_acceleration="native")) as state:
        yield state


@pytest.fixture(scope="module")
def node_ip(accelerated_lab: dict[str, Any]) -> dict[str, str]:
    return deploy_web(NS, accelerated_lab)


def deploy_web(ns: str, lab: dict[str, Any]) -> dict[str, str]:
    """web-1 on node1 and web-2 on node2 (HTTP 8080, DNS-like UDP 5353); node IPs by name."""
    apply(
        namespace(ns),
        pod_manifest(ns, "web-1", "node1", {"app": "web", "pod": "web-1"},
                     [(8080, "TCP"), (5353, "UDP")]),
        pod_manifest(ns, "web-2", "node2", {"app": "web", "pod": "web-2"},
                     [(8080, "TCP"), (5353, "UDP")]),
    )  # fmt: skip
    wait_pods(ns, {"web-1", "web-2"})
    return node_ips(lab)


def stats(node: str) -> xdplb.XdpStats:
    return xdplb.stats(BPF_PIN_ROOT / node)


def wait_served(ip: str, port: int) -> None:
    def answers() -> bool:
        try:
            world_http(ip, port)
        except OSError:
            return False
        return True

    wait_for(answers, 20, f"NodePort {ip}:{port} answering")


def test_xdp_program_attached_and_reported(node_ip: dict[str, str]) -> None:
    for node in ("node1", "node2"):
        link = subprocess.run(
            ["ip", "-n", f"axn-{node}", "-d", "link", "show", "eth0"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "xdp " in link or "xdp/id" in link or "prog/xdp" in link, link
        out = ax("status", "--verbose", "--node", node).stdout
        assert "XDP Acceleration:       Native" in out, out
    # The veth peers of the nodes' eth0 need GRO (NAPI) for XDP_TX to deliver.
    assert get_gro(LAB_NETNS, "axn-n1")


def test_node_port_remote_backend_is_forwarded_in_xdp(node_ip: dict[str, str]) -> None:
    """Backend only on node2, dialled on node1: SNAT + DNAT and XDP_TX both ways."""
    apply(node_port_service(NS, "remote", {"pod": "web-2"}, 30180, 30153))
    wait_served(node_ip["node1"], 30180)
    before = stats("node1")
    for _ in range(10):
        answer = world_http(node_ip["node1"], 30180)
        assert answer["name"] == "web-2", answer
        assert answer["client"].rsplit(":", 1)[0] == node_ip["node1"], answer  # SNAT
    assert world_udp(node_ip["node1"], 30153, b"xdp-udp") == (b"xdp-udp", (node_ip["node1"], 30153))
    after = stats("node1")
    # Each exchange is >= 3 packets in (SYN, ACK, request) and >= 2 back (SYN-ACK,
    # response), all of them forwarded by XDP once the neighbours are known.
    assert after.forwarded - before.forwarded >= 10 * 5, (before, after)
    assert after.to_tc - before.to_tc <= 2, (before, after)


def test_node_port_local_backend_is_translated_in_xdp(node_ip: dict[str, str]) -> None:
    """Backend on the dialled node: DNAT in XDP, the pod sees the client's address."""
    apply(node_port_service(NS, "local", {"pod": "web-1"}, 30280, 30253))
    wait_served(node_ip["node1"], 30280)
    before = stats("node1")
    for _ in range(10):
        answer = world_http(node_ip["node1"], 30280)
        assert answer["name"] == "web-1", answer
        assert answer["client"].rsplit(":", 1)[0] == WORLD_IP, answer
    assert world_udp(node_ip["node1"], 30253, b"xdp-local") == (
        b"xdp-local",
        (node_ip["node1"], 30253),
    )
    after = stats("node1")
    assert after.to_stack - before.to_stack >= 10 * 3, (before, after)
    assert after.forwarded == before.forwarded, (before, after)


def test_client_ip_affinity_in_xdp(node_ip: dict[str, str]) -> None:
    """sessionAffinity: ClientIP is honoured by XDP's backend choice too (the
    choice is lib/nodeport.h's, shared with tc): new connections stay on one
    backend, and XDP served them."""
    apply(node_port_service(NS, "sticky", {"app": "web"}, 30480, 30453, sessionAffinity="ClientIP"))
    wait_served(node_ip["node1"], 30480)
    before = stats("node1")
    served = {world_http(node_ip["node1"], 30480)["name"] for _ in range(20)}
    after = stats("node1")
    assert len(served) == 1, served
    xdp_served = (after.forwarded - before.forwarded) + (after.to_stack - before.to_stack)
    assert xdp_served >= 20 * 3, (before, after)


def test_no_backend_is_rejected_by_tc_behind_xdp(node_ip: dict[str, str]) -> None:
    """--service-no-backend-response reject (default): XDP passes the packet to
    tc, which answers with ICMP port unreachable: the client fails at once."""
    apply(node_port_service(NS, "empty", {"pod": "none"}, 30380, 30353))
    wait_for(
        lambda: "30380" in ax("service", "list", "--node", "node1").stdout, 20, "frontend 30380"
    )
    before = stats("node1")
    assert world_refused(node_ip["node1"], 30380, socket.SOCK_STREAM) < 0.5
    assert world_refused(node_ip["node1"], 30353, socket.SOCK_DGRAM) < 0.5
    after = stats("node1")
    assert after.to_tc - before.to_tc >= 2, (before, after)
    assert after.dropped == before.dropped, (before, after)
