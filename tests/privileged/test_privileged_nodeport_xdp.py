"""NodePort acceleration: bpf_xdp.c in native XDP on each node's eth0, a 2-node lab
started with ``--nodeport-acceleration native``.

Clients are sockets in the world namespace (outside the cluster). The XDP
program's per-CPU counters (``axo_xdp_stats``) tell whether XDP served the
packets: forwarded (translated and sent back out with XDP_TX, never entering
the node's stack) for a backend on the other node, translated and passed to
the stack for a backend on the dialled node, passed to tc (which answers with
ICMP) or dropped for a frontend without backends.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from axoneme.datapath.linux import hostlb, xdplb
from axoneme.kit.ethtool import get_gro
from axoneme.kit.netns import socket_in
from axoneme.lab.topology import BPF_PIN_ROOT, LAB_NETNS, WORLD_IP, WORLD_NETNS
from privileged.conftest import lab_config, started_lab
from privileged.helpers import ax, manifest, namespace, pod_manifest, wait_for, wait_pods

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
    ax(
        "apply",
        "-f",
        "-",
        stdin=manifest(
            namespace(ns),
            pod_manifest(ns, "web-1", "node1", {"app": "web", "pod": "web-1"},
                         [(8080, "TCP"), (5353, "UDP")]),
            pod_manifest(ns, "web-2", "node2", {"app": "web", "pod": "web-2"},
                         [(8080, "TCP"), (5353, "UDP")]),
        ),
    )  # fmt: skip
    wait_pods(ns, {"web-1", "web-2"})
    return {n["name"]: n["ip"] for n in lab["nodes"]}


def node_port_service(name: str, selector: dict[str, str], http: int, dns: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "type": "NodePort",
            "selector": selector,
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "nodePort": http},
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353, "nodePort": dns},
            ],
        },
    }


def stats(node: str) -> xdplb.XdpStats:
    return xdplb.stats(BPF_PIN_ROOT / node)


def world_http(ip: str, port: int) -> dict[str, Any]:
    """One HTTP request from the world namespace; the answer's JSON (who served, who asked)."""
    s = socket_in(f"/run/netns/{WORLD_NETNS}", socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(True)
    s.settimeout(2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        s.connect((ip, port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: np\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    finally:
        s.close()
    return dict(json.loads(data.partition(b"\r\n\r\n")[2]))


def world_udp(ip: str, port: int, payload: bytes) -> tuple[bytes, tuple[str, int]]:
    u = socket_in(f"/run/netns/{WORLD_NETNS}", socket.AF_INET, socket.SOCK_DGRAM)
    u.setblocking(True)
    u.settimeout(2)
    try:
        u.sendto(payload, (ip, port))
        data, peer = u.recvfrom(100)
        return data, peer
    finally:
        u.close()


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
    ax(
        "apply",
        "-f",
        "-",
        stdin=manifest(node_port_service("remote", {"pod": "web-2"}, 30180, 30153)),
    )
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
    ax(
        "apply",
        "-f",
        "-",
        stdin=manifest(node_port_service("local", {"pod": "web-1"}, 30280, 30253)),
    )
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
    sticky = node_port_service("sticky", {"app": "web"}, 30480, 30453)
    sticky["spec"]["sessionAffinity"] = "ClientIP"
    ax("apply", "-f", "-", stdin=manifest(sticky))
    wait_served(node_ip["node1"], 30480)
    before = stats("node1")
    served = {world_http(node_ip["node1"], 30480)["name"] for _ in range(20)}
    after = stats("node1")
    assert len(served) == 1, served
    xdp_served = (after.forwarded - before.forwarded) + (after.to_stack - before.to_stack)
    assert xdp_served >= 20 * 3, (before, after)


def refused(ip: str, port: int, kind: int) -> float:
    """Seconds until a world TCP connect / connected UDP receive is refused."""
    s = socket_in(f"/run/netns/{WORLD_NETNS}", socket.AF_INET, kind)
    s.setblocking(True)
    s.settimeout(2)
    started = time.monotonic()
    try:
        with pytest.raises(ConnectionRefusedError):
            s.connect((ip, port))
            if kind == socket.SOCK_DGRAM:
                s.send(b"anyone?")
                s.recv(100)
        return time.monotonic() - started
    finally:
        s.close()


def test_no_backend_is_rejected_by_tc_behind_xdp(node_ip: dict[str, str]) -> None:
    """--service-no-backend-response reject (default): XDP passes the packet to
    tc, which answers with ICMP port unreachable: the client fails at once."""
    ax(
        "apply",
        "-f",
        "-",
        stdin=manifest(node_port_service("empty", {"pod": "none"}, 30380, 30353)),
    )
    wait_for(
        lambda: "30380" in ax("service", "list", "--node", "node1").stdout, 20, "frontend 30380"
    )
    before = stats("node1")
    assert refused(node_ip["node1"], 30380, socket.SOCK_STREAM) < 0.5
    assert refused(node_ip["node1"], 30353, socket.SOCK_DGRAM) < 0.5
    after = stats("node1")
    assert after.to_tc - before.to_tc >= 2, (before, after)
    assert after.dropped == before.dropped, (before, after)


def test_no_backend_is_dropped_in_xdp_in_drop_mode(node_ip: dict[str, str]) -> None:
    """--service-no-backend-response drop: XDP drops (the lab has no flag for it,
    so the bit the agent writes at start is set here, and restored)."""
    wait_for(
        lambda: "30380" in ax("service", "list", "--node", "node1").stdout, 20, "frontend 30380"
    )
    pin_dir = BPF_PIN_ROOT / "node1"
    events_before = len(no_backend_drops("node1", 30380))
    hostlb.set_mode(pin_dir, dsr=False, no_backend_drop=True)
    try:
        before = stats("node1")
        with pytest.raises(TimeoutError):
            world_http(node_ip["node1"], 30380)
        after = stats("node1")
        assert after.dropped > before.dropped, (before, after)
        assert after.to_tc == before.to_tc, (before, after)
    finally:
        hostlb.set_mode(pin_dir, dsr=False, no_backend_drop=False)
    # XDP's own drop events (the SYN and its retransmissions) reach observe.
    wait_for(lambda: len(no_backend_drops("node1", 30380)) > events_before, 10, "XDP's drop events")


def no_backend_drops(node: str, port: int) -> list[str]:
    out = ax("observe", "--node", node, "-o", "json", "--last", "1000", "--to-port", str(port),
             "--drop-reason-desc", "SERVICE_BACKEND_NOT_FOUND").stdout  # fmt: skip
    return [line for line in out.splitlines() if '"flow"' in line]
