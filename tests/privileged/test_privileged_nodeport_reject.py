"""A NodePort frontend without backends, at tc.

First the real bpf_host.o driven with BPF_PROG_TEST_RUN, byte for byte:
``from_netdev`` is loaded into a private pin directory next to the endpoint
datapath (whose ring buffer and ipcache it shares), the service maps get one
frontend without backends, and crafted packets run through it inside a private
``axt-np-rej-…`` namespace (the program's ``skb->ifindex`` is resolved there).
The ICMP error it builds is checked against RFC 792 here, checksums included.

Then a 2-node lab: clients in the world namespace are refused at once (TCP
ECONNREFUSED, UDP an ICMP error on the socket) by a NodePort without
backends and, under externalTrafficPolicy: Local, by a node without a local
backend; observe shows the drops. test_privileged_nodeport_xdp.py does the same
with XDP in front.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from axoneme.datapath import events as ev
from axoneme.datapath.linux import bpfsys, hostlb
from axoneme.datapath.linux.lbmaps import LB_F_NODEPORT, SvcKey, SvcValue
from axoneme.datapath.linux.maps import IPCacheValue
from axoneme.datapath.linux.ringbuf import EventReader
from axoneme.kit.netns import entered
from axoneme.lab.topology import WORLD_IP
from privileged.bpfenv import private_datapath
from privileged.helpers import (
    apply,
    ax,
    namespace,
    node_ips,
    node_port_service,
    observed_flows,
    pod_manifest,
    wait_for,
    wait_pods,
    world_http,
    world_refused,
)
from privileged.test_privileged_datapath_progrun import _csum, frame, ipv4, skb_ctx, tcp, udp

pytestmark = pytest.mark.privileged

TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = 0, 2, 7
TCP, UDP, ICMP = 6, 17, 1
SYN, ACK = 0x02, 0x10
NODE_IP, CLIENT = "10.99.0.1", "203.0.113.7"
EMPTY_PORT, OTHER_PORT = 30380, 30999
CLIENT_MAC, NODE_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
WORLD_ID = 2
SERVICE_BACKEND_NOT_FOUND = 158


@dataclass
class Env:
    netns: str
    pin_dir: Path
    prog_fd: int
    reader: EventReader
    ifindex: int

    def run(self, packet: bytes) -> bpfsys.TestRun:
        with entered(self.netns):
            return bpfsys.prog_test_run(self.prog_fd, packet, ctx=skb_ctx(self.ifindex))

    def mode(self, no_backend_drop: bool) -> None:
        hostlb.set_mode(self.pin_dir, dsr=False, no_backend_drop=no_backend_drop)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with private_datapath("axt-np-rej", ("eth0", "peer0")) as p:
        p.dp.ipcache.set(f"{NODE_IP}/32", IPCacheValue(1))  # bpf_host.o shares it
        hostlb.load(p.pin_dir)
        hostlb.set_node_ip(p.pin_dir, NODE_IP)
        with bpfsys.BpfMap.open_pinned(p.pin_dir / "axo_lb_svc") as svc:
            empty = SvcValue(7, 0, LB_F_NODEPORT).pack()  # a NodePort, no backend
            for proto in (TCP, UDP):
                svc.update(SvcKey(NODE_IP, EMPTY_PORT, proto).pack(), empty)
        prog_fd = bpfsys.obj_get(p.pin_dir / "prog_from_netdev")
        try:
            yield Env(p.netns, p.pin_dir, prog_fd, p.reader, p.ifindex["eth0"])
        finally:
            os.close(prog_fd)


@pytest.fixture
def rej(env: Env) -> Env:
    env.mode(no_backend_drop=False)
    env.reader.consume()
    return env


def to_node(l3: bytes) -> bytes:
    """A frame from the client's MAC to the node's (frame() has them the other way)."""
    return NODE_MAC + CLIENT_MAC + frame(l3)[12:]


def syn(port: int = EMPTY_PORT, flags: int = SYN) -> bytes:
    return to_node(tcp(CLIENT, NODE_IP, 40000, port, flags)[14:])


def check_icmp_unreachable(out: bytes, request: bytes) -> None:
    """``out`` is the RFC 792 port unreachable about ``request``, back to its sender."""
    assert len(out) == 14 + 20 + 8 + 28, out.hex()
    assert out[:6] == request[6:12] and out[6:12] == request[:6]  # MACs swapped
    assert out[12:14] == b"\x08\x00"
    ip, icmp = out[14:34], out[34:]
    ver_ihl, _tos, tot_len, _id, frag, ttl, proto, _check, src, dst = struct.unpack(
        "!BBHHHBBH4s4s", ip
    )
    assert (ver_ihl, tot_len, frag, proto) == (0x45, 56, 0, ICMP)
    assert ttl == 64
    assert (socket.inet_ntoa(src), socket.inet_ntoa(dst)) == (NODE_IP, CLIENT)
    assert _csum(ip) == 0, "bad IP header checksum"
    assert icmp[:2] == b"\x03\x03" and icmp[4:8] == b"\0\0\0\0"  # port unreachable
    assert _csum(icmp) == 0, "bad ICMP checksum"
    assert icmp[8:] == request[14 : 14 + 28]  # the IP header + 8 bytes, unchanged


def drop_events(env: Env) -> list[ev.DatapathEvent]:
    return [e for e in env.reader.consume() if e.type == ev.EVENT_DROP]


def test_tcp_syn_is_answered_with_port_unreachable(rej: Env) -> None:
    request = syn()
    result = rej.run(request)
    assert result.retval == TC_ACT_REDIRECT  # back out of the device it came in by
    check_icmp_unreachable(result.data, request)
    (event,) = drop_events(rej)
    assert (event.verdict_name, event.reason, event.reason_name) == (
        "DROPPED", SERVICE_BACKEND_NOT_FOUND, "SERVICE_BACKEND_NOT_FOUND"
    )  # fmt: skip
    assert (event.saddr, event.sport, event.daddr, event.dport, event.proto) == (
        CLIENT, 40000, NODE_IP, EMPTY_PORT, TCP
    )  # fmt: skip
    assert (event.src_identity, event.dst_identity, event.tcp_flags) == (WORLD_ID, 1, SYN)
    assert event.ifindex == rej.ifindex


def test_udp_datagram_is_answered_small_or_large(rej: Env) -> None:
    for payload in (b"", b"q" * 1000):  # the reply is padded or trimmed to 70 bytes
        request = to_node(udp(CLIENT, NODE_IP, 5353, EMPTY_PORT, payload)[14:])
        result = rej.run(request)
        assert result.retval == TC_ACT_REDIRECT
        check_icmp_unreachable(result.data, request)
    assert [e.reason for e in drop_events(rej)] == [SERVICE_BACKEND_NOT_FOUND] * 2


def test_a_segment_that_is_not_a_syn_is_dropped_unanswered(rej: Env) -> None:
    request = syn(flags=ACK)
    result = rej.run(request)
    assert result.retval == TC_ACT_SHOT
    assert [e.reason for e in drop_events(rej)] == [SERVICE_BACKEND_NOT_FOUND]


def test_fragments_first_answered_later_dropped(rej: Env) -> None:
    """A datagram's first fragment is answered; its later ones (no L4 header,
    ports from the first) are only dropped; a later fragment whose first was
    never seen is no frontend packet at all and passes untouched, as before."""
    udp_header = struct.pack("!HHHH", 5353, EMPTY_PORT, 8 + 32, 0)
    first = to_node(ipv4(CLIENT, NODE_IP, UDP, udp_header + b"a" * 16, frag=0x2000, ident=9))
    later = to_node(ipv4(CLIENT, NODE_IP, UDP, b"b" * 16, frag=3, ident=9))
    result = rej.run(first)
    assert result.retval == TC_ACT_REDIRECT
    check_icmp_unreachable(result.data, first)
    assert rej.run(later).retval == TC_ACT_SHOT
    assert [e.reason for e in drop_events(rej)] == [SERVICE_BACKEND_NOT_FOUND] * 2
    stray = to_node(ipv4(CLIENT, NODE_IP, UDP, b"c" * 16, frag=3, ident=10))
    assert rej.run(stray).retval == TC_ACT_OK
    assert drop_events(rej) == []


def test_drop_mode_drops_with_the_same_event(rej: Env) -> None:
    rej.mode(no_backend_drop=True)
    for request in (syn(), to_node(udp(CLIENT, NODE_IP, 5353, EMPTY_PORT)[14:])):
        result = rej.run(request)
        assert result.retval == TC_ACT_SHOT
    assert [e.reason for e in drop_events(rej)] == [SERVICE_BACKEND_NOT_FOUND] * 2


def test_other_traffic_is_untouched(rej: Env) -> None:
    request = syn(port=OTHER_PORT)  # not a frontend
    result = rej.run(request)
    assert (result.retval, result.data) == (TC_ACT_OK, request)
    assert drop_events(rej) == []


# ---- the lab: real clients outside the cluster ------------------------------------------

NS = "np-reject"


def service_drops(node: str, port: int) -> list[dict[str, Any]]:
    return observed_flows("--node", node, "--to-port", str(port), "--verdict", "DROPPED")


@pytest.fixture(scope="module")
def node_ip(lab: dict[str, Any]) -> dict[str, str]:
    """web-2 on node2 behind an externalTrafficPolicy: Local NodePort, and a
    NodePort that selects nothing."""
    apply(
        namespace(NS),
        pod_manifest(NS, "web-2", "node2", {"pod": "web-2"}, [(8080, "TCP"), (5353, "UDP")]),
        node_port_service(NS, "empty", {"pod": "none"}, 31380, 31353),
        node_port_service(NS, "local", {"pod": "web-2"}, 31480, 31453,
                          externalTrafficPolicy="Local"),
    )  # fmt: skip
    wait_pods(NS, {"web-2"})
    ips = node_ips(lab)
    local = ips["node2"]
    wait_for(lambda: world_http(local, 31480)["name"] == "web-2", 20, "the Local NodePort on node2")
    wait_for(lambda: "31380" in ax("service", "list", "--node", "node1").stdout, 20, "31380")
    return ips


@pytest.mark.lab
def test_status_shows_reject(node_ip: dict[str, str]) -> None:
    out = ax("status", "--verbose", "--node", "node1").stdout
    assert "No Backend Response:    Reject" in out, out


@pytest.mark.lab
def test_node_port_without_backends_refuses_tcp_and_udp_at_once(node_ip: dict[str, str]) -> None:
    for node in ("node1", "node2"):
        assert world_refused(node_ip[node], 31380, socket.SOCK_STREAM) < 0.5
        assert world_refused(node_ip[node], 31353, socket.SOCK_DGRAM) < 0.5
    flows = wait_for(lambda: service_drops("node1", 31380), 10, "the drop in observe")
    f = flows[-1]
    assert (f["verdict"], f["dropReasonDesc"]) == ("DROPPED", "SERVICE_BACKEND_NOT_FOUND"), f
    assert (f["IP"]["source"], f["IP"]["destination"]) == (WORLD_IP, node_ip["node1"]), f


@pytest.mark.lab
def test_local_policy_node_without_backend_refuses(node_ip: dict[str, str]) -> None:
    """externalTrafficPolicy: Local: node2 serves, node1 (no local backend) refuses."""
    assert world_http(node_ip["node2"], 31480)["name"] == "web-2"
    assert world_refused(node_ip["node1"], 31480, socket.SOCK_STREAM) < 0.5
    assert world_refused(node_ip["node1"], 31453, socket.SOCK_DGRAM) < 0.5
    assert wait_for(lambda: service_drops("node1", 31453), 10, "the UDP drop in observe")
