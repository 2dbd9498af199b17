"""Routing modes on a 3-node lab: tunnel (VXLAN, identity in the VNI) and native, with
eBPF host routing (redirect_peer / redirect_neigh) or the kernel stack.

In every mode: same-node and cross-node traffic reaches a pod only as its ingress
policy says (enforced by identity on the receiving node), the datapath took the
path the mode promises (its forwarding counters moved), and a pod that forges
another pod's source address is dropped at its own node (INVALID_SOURCE_IP).
In tunnel mode a VXLAN packet crafted on the underlay shows that the receiving
node decides by the VNI's identity and ignores the inner source address.
"""

from __future__ import annotations

import json
import select
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from axoneme.api.client import AgentClient
from axoneme.datapath.linux.maps import MetricsMap
from axoneme.kit.netns import socket_in
from axoneme.lab import control
from axoneme.lab.topology import BPF_PIN_ROOT, LAB_DIR, WORLD_NETNS, LabConfig, pod_netns
from privileged.conftest import lab_down_clean
from privileged.helpers import ax, manifest, namespace, pod_manifest, wait_pods

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NS = "rt"
PORT = 7777  # UDP: the test's own listener in the web pod (the policy allows client on it)
VXLAN_PORT = 8472
POLICY = {
    "apiVersion": "cilium.io/v2",
    "kind": "CiliumNetworkPolicy",
    "metadata": {"name": "web-from-client", "namespace": NS},
    "spec": {
        "endpointSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {
                "fromEndpoints": [{"matchLabels": {"app": "client"}}],
                "toPorts": [
                    {
                        "ports": [
                            {"port": "80", "protocol": "TCP"},
                            {"port": str(PORT), "protocol": "UDP"},
                        ]
                    }
                ],
            }
        ],
    },
}
PODS = {  # name: (node, app)
    "web": ("node2", "web"),
    "client": ("node1", "client"),
    "other": ("node1", "other"),
    "near-client": ("node2", "client"),
    "near-other": ("node2", "other"),
    "far-client": ("node3", "client"),
}
MODES = ["tunnel/bpf", "tunnel/legacy", "native/bpf", "native/legacy"]


class Lab:
    def __init__(self, mode: str, host: str, pods: dict[str, dict[str, Any]]) -> None:
        self.mode, self.host = mode, host
        self.pods = pods
        self.ip = {name: str(p["status"]["podIP"]) for name, p in pods.items()}
        self.identity: dict[str, int] = {}
        for node in ("node1", "node2", "node3"):
            sock = LAB_DIR / "nodes" / node / "agent.sock"
            for ep in AgentClient(sock).get("/v1/endpoints"):
                if ep["namespace"] == NS:
                    self.identity[ep["pod"]] = int(ep["identity"])

    def netns(self, pod: str) -> str:
        return f"/run/netns/{pod_netns(NS, pod, self.pods[pod]['metadata']['uid'])}"


@pytest.fixture(scope="module", params=MODES)
def lab(request: pytest.FixtureRequest, lab_lock: None) -> Iterator[Lab]:
    mode, host = str(request.param).split("/")
    control.down(grace=5.0)
    control.up(LabConfig(nodes=3, routing_mode=mode, host_routing=host))
    try:
        objects = [namespace(NS)] + [
            pod_manifest(NS, name, node, {"app": app}, [(80, "TCP")])
            for name, (node, app) in PODS.items()
        ]
        ax("apply", "-f", "-", stdin=manifest(*objects))
        pods = wait_pods(NS, set(PODS))
        out = ax("policy", "import", "-f", "-", stdin=manifest(POLICY)).stdout
        ax("policy", "wait", out.strip().splitlines()[-1].split()[-1], "--timeout", "30")
        yield Lab(mode, host, pods)
    finally:
        lab_down_clean()


def counters(node: str) -> dict[int, int]:
    with MetricsMap.open(BPF_PIN_ROOT / node) as m:
        return {k: v.packets for k, v in m.read().items()}


def probe(src: str, dst: str) -> str:
    out = ax("probe", "--timeout", "1.5", src, dst, check=False).stdout.split()
    return out[0] if out else "(no output)"


def listen(lab: Lab) -> socket.socket:
    sock = socket_in(lab.netns("web"), socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", PORT))
    return sock


def received(sock: socket.socket, payload: bytes, wait: float = 1.5) -> bool:
    ready, _, _ = select.select([sock], [], [], wait)
    while ready:
        data = sock.recv(2048)
        if data == payload:
            return True
        ready, _, _ = select.select([sock], [], [], wait)
    return False


def checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return int(~(total + (total >> 16)) & 0xFFFF)


def ipv4_udp(src: str, dst: str, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0x4242, 0, 64, socket.IPPROTO_UDP, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + udp


def test_status_reports_the_mode(lab: Lab) -> None:
    out = ax("status").stdout
    network = "Tunnel [vxlan]" if lab.mode == "tunnel" else "Native"
    host = "BPF" if lab.host == "bpf" else "Legacy"
    assert out.count(f"Routing:    Network: {network}   Host: {host}") == 3, out


def test_ingress_policy_by_identity_same_node_and_across_nodes(lab: Lab) -> None:
    web = f"{NS}/web:80/TCP"
    before = {n: counters(n) for n in ("node1", "node2", "node3")}
    outcomes = {src: probe(f"{NS}/{src}", web) for src in PODS if src != "web"}
    assert outcomes == {
        "client": "reachable",
        "other": "timeout",
        "near-client": "reachable",
        "near-other": "timeout",
        "far-client": "reachable",
    }
    after = {n: counters(n) for n in ("node1", "node2", "node3")}

    def moved(node: str, index: int) -> int:
        return after[node].get(index, 0) - before[node].get(index, 0)

    if lab.host == "bpf":  # near-client -> web went past the stack, into the pod
        assert moved("node2", MetricsMap.REDIRECT_PEER) > 0
    else:
        assert moved("node2", MetricsMap.REDIRECT_PEER) == 0
    if lab.mode == "tunnel":  # node1 and node3 encapsulated, node2 decapsulated
        assert moved("node1", MetricsMap.TUNNEL_TX) > 0
        assert moved("node3", MetricsMap.TUNNEL_TX) > 0
        assert moved("node2", MetricsMap.TUNNEL_RX) > 0
    else:
        assert moved("node2", MetricsMap.TUNNEL_RX) == 0
        if lab.host == "bpf":  # native + bpf: FIB lookup + redirect_neigh out of eth0
            assert moved("node1", MetricsMap.REDIRECT_NEIGH) > 0


def test_forged_source_address_is_dropped_at_the_sender(lab: Lab) -> None:
    payload = f"spoof-{lab.mode}-{lab.host}".encode()
    with listen(lab) as sock:
        # Control: the real client reaches the listener (the policy allows it).
        with socket_in(lab.netns("client"), socket.AF_INET, socket.SOCK_DGRAM) as out:
            out.sendto(b"genuine", (lab.ip["web"], PORT))
        assert received(sock, b"genuine")
        dropped = counters("node1").get(132, 0)
        with socket_in(
            lab.netns("other"), socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW
        ) as raw:
            for _ in range(3):
                raw.sendto(
                    ipv4_udp(lab.ip["client"], lab.ip["web"], PORT, payload), (lab.ip["web"], 0)
                )
        assert not received(sock, payload), "a forged source address gained the client's access"
    assert counters("node1").get(132, 0) - dropped == 3  # INVALID_SOURCE_IP, once per packet


def vxlan(vni: int, inner: bytes) -> bytes:
    ether = bytes.fromhex("020000000001020000000002") + struct.pack("!H", 0x0800)
    return struct.pack("!II", 0x08000000, vni << 8) + ether + inner


def test_receiving_node_trusts_the_vni_not_the_inner_source(lab: Lab) -> None:
    """Crafted on the underlay (as a compromised host could): the VNI decides. In native
    mode no node decapsulates VXLAN at all, so no crafted identity gets in."""
    node2 = json.loads((LAB_DIR / "lab.json").read_text())["nodes"][1]["ip"]
    with (
        listen(lab) as sock,
        socket_in(f"/run/netns/{WORLD_NETNS}", socket.AF_INET, socket.SOCK_DGRAM) as world,
    ):
        if lab.mode != "tunnel":
            inner = ipv4_udp("10.42.1.250", lab.ip["web"], PORT, b"vni-native")
            world.sendto(vxlan(lab.identity["client"], inner), (node2, VXLAN_PORT))
            assert not received(sock, b"vni-native")
            return
        # The client's address, the other pod's identity: denied.
        inner = ipv4_udp(lab.ip["client"], lab.ip["web"], PORT, b"vni-other")
        world.sendto(vxlan(lab.identity["other"], inner), (node2, VXLAN_PORT))
        assert not received(sock, b"vni-other")
        # An address nobody holds (world by the ipcache), the client's identity: allowed.
        inner = ipv4_udp("10.42.1.250", lab.ip["web"], PORT, b"vni-client")
        world.sendto(vxlan(lab.identity["client"], inner), (node2, VXLAN_PORT))
        assert received(sock, b"vni-client")


def test_pod_mtu_leaves_room_for_the_tunnel(lab: Lab) -> None:
    from axoneme.datapath.linux.netdev import netlink_in

    with netlink_in(lab.netns("web")) as ipr:
        link = ipr.link("get", index=ipr.link_lookup(ifname="eth0")[0])[0]
    assert link.get("IFLA_MTU") == (1450 if lab.mode == "tunnel" else 1500)


def test_pins_are_per_node(lab: Lab) -> None:
    for node in ("node1", "node2", "node3"):
        assert (Path(BPF_PIN_ROOT) / node / "prog_from_overlay").exists()
