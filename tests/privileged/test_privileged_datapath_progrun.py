"""The real bpf_lxc programs and maps, driven packet by packet with BPF_PROG_TEST_RUN.

Two endpoints A and B are the two ends of a veth pair inside a private
``axt-dp-run-…`` namespace (BPF_PROG_TEST_RUN resolves ``skb->ifindex`` in
the caller's namespace, so runs happen inside it); the datapath is loaded
into ``/sys/fs/bpf/axt-dp-run-…``. Packets are crafted here, verdicts are
the programs' return values, and the events are read back from the ring
buffer and decoded in Python.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from axoneme.datapath import events as ev
from axoneme.datapath.linux import bpfsys
from axoneme.datapath.linux.loader import Datapath
from axoneme.datapath.linux.maps import (
    EGRESS,
    INGRESS,
    CtKey,
    IPCacheValue,
    LxcInfo,
    PolicyCIDRKey,
    PolicyKey,
    lxc_flags,
)
from axoneme.datapath.linux.ringbuf import EventReader
from axoneme.datapath.portsets import port_entries
from axoneme.kit.netns import entered
from axoneme.policy.types import PortVerdicts
from privileged.bpfenv import private_datapath
from privileged.bpfenv import require_datapath as require_datapath  # others import it here

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
TC_ACT_OK = 0
TC_ACT_SHOT = 2
TCP, UDP, ICMP, SCTP = 6, 17, 1, 132
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

A_IP, B_IP = "10.0.0.1", "10.0.0.2"
A_ID, B_ID = 1001, 1002
A_EP, B_EP = 1, 2


# ---- packets -----------------------------------------------------------------------------


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(
    src: str, dst: str, proto: int, payload: bytes, *, frag: int = 0, options: bytes = b"",
    ident: int = 1,
) -> bytes:  # fmt: skip
    ihl = 5 + len(options) // 4
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), ident, frag, 64, proto, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    ) + options  # fmt: skip
    header = header[:10] + struct.pack("!H", _csum(header)) + header[12:]
    return header + payload


def frame(l3: bytes, ethertype: int = 0x0800) -> bytes:
    return bytes.fromhex("020000000002020000000001") + struct.pack("!H", ethertype) + l3


def tcp(src: str, dst: str, sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
    segment = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)
    return frame(ipv4(src, dst, TCP, segment + payload))


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x") -> bytes:
    return frame(ipv4(src, dst, UDP, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
                      + payload))  # fmt: skip


def sctp(src: str, dst: str, sport: int, dport: int) -> bytes:
    return frame(ipv4(src, dst, SCTP, struct.pack("!HHII", sport, dport, 0, 0)))


def icmp(src: str, dst: str, icmp_type: int = 8) -> bytes:
    return frame(ipv4(src, dst, ICMP, struct.pack("!BBHHH", icmp_type, 0, 0, 7, 1)))


def skb_ctx(ifindex: int) -> bytes:
    """A ``struct __sk_buff`` (192 bytes) with only ifindex (offset 40) set."""
    ctx = bytearray(192)
    struct.pack_into("=I", ctx, 40, ifindex)
    return bytes(ctx)


# ---- the environment ---------------------------------------------------------------------


@dataclass
class Env:
    netns: str
    dp: Datapath
    reader: EventReader
    a: int  # ifindex of endpoint A
    b: int

    def run(self, program: str, ifindex: int, packet: bytes, repeat: int = 1) -> bpfsys.TestRun:
        with entered(self.netns):
            return bpfsys.prog_test_run(
                self.dp.program_fd(program), packet, ctx=skb_ctx(ifindex), repeat=repeat
            )

    def to_b(self, packet: bytes) -> int:
        """A packet entering pod B (B's ingress policy)."""
        return self.run("to_container", self.b, packet).retval

    def from_b(self, packet: bytes) -> int:
        """A packet leaving pod B (B's egress policy)."""
        return self.run("from_container", self.b, packet).retval

    def from_a(self, packet: bytes) -> int:
        return self.run("from_container", self.a, packet).retval

    def events(self) -> list[ev.DatapathEvent]:
        return self.reader.consume()

    def endpoint(self, ifindex: int, flags: int) -> None:
        ep, ip, identity = (A_EP, A_IP, A_ID) if ifindex == self.a else (B_EP, B_IP, B_ID)
        self.dp.lxc.set(ifindex, LxcInfo(ep, identity, ip, flags, "02:00:00:00:00:0a"))

    def port_set(self, set_id: int, allow: tuple[tuple[int, int], ...] = (),
                 deny: tuple[tuple[int, int], ...] = ()) -> None:  # fmt: skip
        self.dp.ports.write_set(set_id, port_entries(PortVerdicts(allow, deny)), cookie=set_id)


def line(proto: int, low: int, high: int | None = None) -> tuple[int, int]:
    """An interval of the protocol/port line: proto, ports low..high."""
    return (proto << 16 | low, proto << 16 | (low if high is None else high))


def whole(proto: int) -> tuple[int, int]:
    return (proto << 16, proto << 16 | 0xFFFF)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with private_datapath("axt-dp-run", ("va", "vb")) as p:
        yield Env(p.netns, p.dp, p.reader, p.ifindex["va"], p.ifindex["vb"])


@pytest.fixture
def dp_env(env: Env) -> Env:
    """The environment with every map emptied and no pending events."""
    dp = env.dp
    for m in (dp.lxc, dp.ipcache, dp.policy, dp.policy_cidr, dp.ports, dp.ct):
        m.clear()
    dp.metrics.reset()
    env.events()
    env.endpoint(env.a, 0)
    env.endpoint(env.b, 0)
    dp.ipcache.set(f"{A_IP}/32", IPCacheValue(A_ID))
    dp.ipcache.set(f"{B_IP}/32", IPCacheValue(B_ID))
    return env


def kinds(events: list[ev.DatapathEvent]) -> list[tuple[str, str, int]]:
    return [(e.type_name, e.verdict_name, e.reason) for e in events]


# ---- the contract, case by case ---------------------------------------------------------


def test_interface_without_endpoint_passes_silently(dp_env: Env) -> None:
    dp_env.dp.lxc.delete(dp_env.b)
    assert dp_env.to_b(tcp(A_IP, B_IP, 40000, 80, SYN)) == TC_ACT_OK
    assert dp_env.events() == []
    assert dp_env.dp.ct.items() == []


def test_not_enforced_passes_and_tracks(dp_env: Env) -> None:
    assert dp_env.to_b(tcp(A_IP, B_IP, 40000, 80, SYN)) == TC_ACT_OK
    assert kinds(dp_env.events()) == [("POLICY_VERDICT", "FORWARDED", 0), ("TRACE", "FORWARDED", 0)]
    assert [k for k, _ in dp_env.dp.ct.items()] == [CtKey(A_IP, B_IP, 40000, 80, TCP, INGRESS)]


def test_enforced_without_rule_drops_133(dp_env: Env) -> None:
    dp_env.endpoint(dp_env.b, lxc_flags(ingress_enforced=True))
    assert dp_env.to_b(tcp(A_IP, B_IP, 40000, 80, SYN)) == TC_ACT_SHOT
    assert kinds(dp_env.events()) == [
        ("POLICY_VERDICT", "DROPPED", 133),
        ("DROP", "DROPPED", 133),
    ]
    assert dp_env.dp.ct.items() == []
    assert dp_env.dp.metrics.read()[133].packets == 1
    # Egress is not enforced: B may still open connections.
    assert dp_env.from_b(tcp(B_IP, A_IP, 40001, 80, SYN)) == TC_ACT_OK


def test_allow_by_identity_creates_ct_and_reply_passes(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True, egress_enforced=True))
    d.dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 10)
    d.port_set(10, allow=(line(TCP, 80),))
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, SYN)) == TC_ACT_OK
    ((key, value),) = d.dp.ct.items()
    assert key == CtKey(A_IP, B_IP, 40000, 80, TCP, INGRESS)
    assert (value.src_identity, value.ep_id, value.packets, value.tcp_flags_seen) == (
        A_ID, B_EP, 1, SYN,
    )  # fmt: skip
    assert not value.reply_seen
    # The reply leaves B by its egress hook, where nothing is allowed: CT lets it out.
    assert d.from_b(tcp(B_IP, A_IP, 80, 40000, SYN | ACK)) == TC_ACT_OK
    value = d.dp.ct.get(key)
    assert value is not None
    assert (value.packets, value.reply_seen, value.reply_flags_seen) == (2, 1, SYN | ACK)
    evs = d.events()
    assert [(e.type_name, e.ct_state_name) for e in evs] == [
        ("POLICY_VERDICT", "new"), ("TRACE", "new"), ("TRACE", "reply"),
    ]  # fmt: skip
    assert evs[0].cookie == 10
    # Same port, other identity, and other port, same identity: denied.
    d.dp.ipcache.set("10.0.0.9/32", IPCacheValue(4242))
    assert d.to_b(tcp("10.0.0.9", B_IP, 40000, 80, SYN)) == TC_ACT_SHOT
    assert d.to_b(tcp(A_IP, B_IP, 40000, 81, SYN)) == TC_ACT_SHOT
    # A connection B opens is still subject to B's (enforced, empty) egress policy.
    assert d.from_b(tcp(B_IP, A_IP, 40002, 80, SYN)) == TC_ACT_SHOT


def test_deny_beats_allow_181(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    d.dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 10)
    d.port_set(10, allow=(whole(TCP),))
    d.dp.policy.set(PolicyKey(0, B_EP, INGRESS), 11)
    d.port_set(11, deny=(line(TCP, 22),))
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, SYN)) == TC_ACT_OK
    d.events()
    assert d.to_b(tcp(A_IP, B_IP, 40000, 22, SYN)) == TC_ACT_SHOT
    evs = d.events()
    assert kinds(evs) == [("POLICY_VERDICT", "DROPPED", 181), ("DROP", "DROPPED", 181)]
    assert evs[0].cookie == 11


def test_deny_applies_without_enforcement(dp_env: Env) -> None:
    d = dp_env
    d.dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 12)
    d.port_set(12, deny=(whole(UDP),))
    assert d.to_b(udp(A_IP, B_IP, 5000, 53)) == TC_ACT_SHOT
    assert d.to_b(tcp(A_IP, B_IP, 5000, 53, SYN)) == TC_ACT_OK


def test_any_identity_entry(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    d.dp.policy.set(PolicyKey(0, B_EP, INGRESS), 13)
    d.port_set(13, allow=(line(TCP, 443),))
    d.dp.ipcache.set("10.0.0.9/32", IPCacheValue(4242))
    assert d.to_b(tcp(A_IP, B_IP, 40000, 443, SYN)) == TC_ACT_OK
    assert d.to_b(tcp("10.0.0.9", B_IP, 40000, 443, SYN)) == TC_ACT_OK
    assert d.to_b(tcp("203.0.113.7", B_IP, 40000, 443, SYN)) == TC_ACT_OK  # world too
    assert d.to_b(tcp(A_IP, B_IP, 40000, 444, SYN)) == TC_ACT_SHOT


def test_port_ranges_and_protocols(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    d.dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 14)
    d.port_set(14, allow=(line(TCP, 8000, 8100), line(UDP, 53), line(SCTP, 5000, 5001)))
    verdicts = {
        port: d.to_b(tcp(A_IP, B_IP, 41000 + i, port, SYN))
        for i, port in enumerate((7999, 8000, 8001, 8050, 8063, 8064, 8099, 8100, 8101))
    }
    assert verdicts == {7999: TC_ACT_SHOT, 8000: TC_ACT_OK, 8001: TC_ACT_OK, 8050: TC_ACT_OK,
                        8063: TC_ACT_OK, 8064: TC_ACT_OK, 8099: TC_ACT_OK, 8100: TC_ACT_OK,
                        8101: TC_ACT_SHOT}  # fmt: skip
    assert d.to_b(udp(A_IP, B_IP, 40000, 8050)) == TC_ACT_SHOT  # the range is TCP only
    assert d.to_b(udp(A_IP, B_IP, 40000, 53)) == TC_ACT_OK
    assert d.to_b(udp(A_IP, B_IP, 40000, 54)) == TC_ACT_SHOT
    assert d.to_b(sctp(A_IP, B_IP, 40000, 5001)) == TC_ACT_OK
    assert d.to_b(sctp(A_IP, B_IP, 40000, 5002)) == TC_ACT_SHOT
    assert d.to_b(icmp(A_IP, B_IP)) == TC_ACT_SHOT
    assert d.dp.ports.verdicts(14).allow == (line(TCP, 8000, 8100), line(UDP, 53),
                                             line(SCTP, 5000, 5001))  # fmt: skip


def test_udp_and_icmp_replies_pass_on_ct(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True, egress_enforced=True))
    d.dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 15)
    d.port_set(15, allow=(whole(ICMP), line(UDP, 53)))
    assert d.to_b(udp(A_IP, B_IP, 33333, 53)) == TC_ACT_OK
    assert d.from_b(udp(B_IP, A_IP, 53, 33333)) == TC_ACT_OK
    assert d.to_b(icmp(A_IP, B_IP, 8)) == TC_ACT_OK
    assert d.from_b(icmp(B_IP, A_IP, 0)) == TC_ACT_OK
    assert d.from_b(udp(B_IP, A_IP, 53, 33334)) == TC_ACT_SHOT  # no such connection
    assert {k.proto for k, _ in d.dp.ct.items()} == {UDP, ICMP}


def test_all_protocols_entry_covers_icmp(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    d.dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 16)
    d.port_set(16, allow=((0, 0xFFFFFF),))
    assert d.dp.ports.entries(16)[0].prefixlen == 32
    assert d.to_b(icmp(A_IP, B_IP)) == TC_ACT_OK
    assert d.to_b(udp(A_IP, B_IP, 1, 2)) == TC_ACT_OK


def test_cidr_longest_prefix(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    d.dp.policy_cidr.set(PolicyCIDRKey(B_EP, INGRESS, "192.168.0.0/16"), 20)
    d.port_set(20, allow=(whole(TCP),))
    d.dp.policy_cidr.set(PolicyCIDRKey(B_EP, INGRESS, "192.168.5.0/24"), 21)
    d.port_set(21, allow=(line(UDP, 53),))
    # Another endpoint's and another direction's prefixes must not leak in.
    d.dp.policy_cidr.set(PolicyCIDRKey(A_EP, INGRESS, "172.20.0.0/16"), 20)
    d.dp.policy_cidr.set(PolicyCIDRKey(B_EP, EGRESS, "172.21.0.0/16"), 20)
    assert d.to_b(tcp("192.168.1.1", B_IP, 40000, 80, SYN)) == TC_ACT_OK
    evs = d.events()
    assert (evs[0].src_identity, evs[0].cookie) == (2, 20)  # not in the ipcache: world
    assert d.to_b(tcp("192.168.5.5", B_IP, 40000, 80, SYN)) == TC_ACT_SHOT  # /24 wins
    assert d.to_b(udp("192.168.5.5", B_IP, 40000, 53)) == TC_ACT_OK
    assert d.to_b(tcp("10.9.9.9", B_IP, 40000, 80, SYN)) == TC_ACT_SHOT
    assert d.to_b(tcp("172.20.0.1", B_IP, 40000, 80, SYN)) == TC_ACT_SHOT
    assert d.to_b(tcp("172.21.0.1", B_IP, 40000, 80, SYN)) == TC_ACT_SHOT
    assert d.dp.policy_cidr.lookup(B_EP, INGRESS, "172.20.0.1") is None
    assert d.dp.policy_cidr.lookup(A_EP, INGRESS, "172.20.0.1") == 20
    assert d.dp.policy_cidr.lookup(B_EP, INGRESS, "192.168.5.1") == 21
    assert d.dp.policy_cidr.lookup(B_EP, INGRESS, "192.168.6.1") == 20
    assert PolicyCIDRKey(B_EP, EGRESS, "172.21.0.0/16") in dict(d.dp.policy_cidr.items())


def test_audit_passes_with_audit_event(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True, ingress_audit=True))
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, SYN)) == TC_ACT_OK
    evs = d.events()
    assert kinds(evs) == [("POLICY_VERDICT", "AUDIT", 133), ("TRACE", "FORWARDED", 0)]
    assert len(d.dp.ct.items()) == 1
    assert 133 not in d.dp.metrics.read()


def test_ipcache_default_world_and_prefixes(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    d.dp.policy.set(PolicyKey(2, B_EP, INGRESS), 30)
    d.port_set(30, allow=(line(TCP, 80),))
    assert d.to_b(tcp("8.8.8.8", B_IP, 40000, 80, SYN)) == TC_ACT_OK
    assert d.events()[0].src_identity == 2
    # A covering prefix gives its identity (a CIDR identity), no longer world.
    d.dp.ipcache.set("8.8.0.0/16", IPCacheValue(16777217))
    assert d.dp.ipcache.lookup("8.8.4.4") == IPCacheValue(16777217)
    assert d.to_b(tcp("8.8.4.4", B_IP, 40000, 80, SYN)) == TC_ACT_SHOT
    assert d.events()[0].src_identity == 16777217
    assert ("8.8.0.0/16", IPCacheValue(16777217)) in d.dp.ipcache.items()


def test_established_connection_survives_policy_change(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    d.dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 10)
    d.port_set(10, allow=(line(TCP, 80),))
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, SYN)) == TC_ACT_OK
    assert d.from_b(tcp(B_IP, A_IP, 80, 40000, SYN | ACK)) == TC_ACT_OK
    # Policy now denies port 80 outright.
    d.dp.policy.delete(PolicyKey(A_ID, B_EP, INGRESS))
    d.dp.policy.set(PolicyKey(0, B_EP, INGRESS), 11)
    d.port_set(11, deny=(line(TCP, 80),))
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, ACK, b"GET /")) == TC_ACT_OK
    assert d.from_b(tcp(B_IP, A_IP, 80, 40000, ACK, b"200")) == TC_ACT_OK
    assert d.to_b(tcp(A_IP, B_IP, 40001, 80, SYN)) == TC_ACT_SHOT  # a new one is denied
    # Flushing conntrack makes the old connection face the policy again.
    assert d.dp.ct.flush() == 1
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, ACK)) == TC_ACT_SHOT


def test_event_fields(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    packet = tcp(A_IP, B_IP, 40000, 8080, SYN)
    assert d.to_b(packet) == TC_ACT_SHOT
    verdict, drop = d.events()
    assert drop == ev.DatapathEvent(
        ts_ns=drop.ts_ns, type=ev.EVENT_DROP, verdict=ev.VERDICT_DROPPED, dir=INGRESS,
        proto=TCP, ep_id=B_EP, reason=133, src_identity=A_ID, dst_identity=B_ID, saddr=A_IP,
        daddr=B_IP, sport=40000, dport=8080, tcp_flags=SYN, ct_state=ev.CT_NEW, ifindex=d.b,
        len=len(packet), cookie=0,
    )  # fmt: skip
    assert verdict.type == ev.EVENT_POLICY_VERDICT
    assert 0 < verdict.ts_ns <= drop.ts_ns
    assert drop.reason_name == "POLICY_DENIED"
    assert "Policy denied" in drop.summary()
    # Egress: the endpoint is the source.
    d.endpoint(d.a, lxc_flags(egress_enforced=True))
    assert d.from_a(udp(A_IP, "1.1.1.1", 5353, 53)) == TC_ACT_SHOT
    out = d.events()[-1]
    assert (out.dir, out.src_identity, out.dst_identity, out.ep_id, out.ifindex) == (
        EGRESS, A_ID, 2, A_EP, d.a,
    )  # fmt: skip


def test_trace_aggregation(dp_env: Env) -> None:
    d = dp_env
    traces = lambda: [e for e in d.events() if e.type == ev.EVENT_TRACE]  # noqa: E731
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, SYN)) == TC_ACT_OK
    assert [e.ct_state for e in traces()] == [ev.CT_NEW]
    assert d.from_b(tcp(B_IP, A_IP, 80, 40000, SYN | ACK)) == TC_ACT_OK
    assert [e.ct_state for e in traces()] == [ev.CT_REPLY]
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, ACK)) == TC_ACT_OK
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, ACK | PSH, b"data")) == TC_ACT_OK
    assert d.from_b(tcp(B_IP, A_IP, 80, 40000, ACK | PSH, b"data")) == TC_ACT_OK
    assert traces() == []  # established traffic: no per-packet events
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, FIN | ACK)) == TC_ACT_OK
    fin = traces()
    assert [(e.ct_state, e.tcp_flags) for e in fin] == [(ev.CT_ESTABLISHED, FIN | ACK)]
    assert (fin[0].src_identity, fin[0].dst_identity) == (A_ID, B_ID)
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, FIN | ACK)) == TC_ACT_OK  # retransmitted FIN
    assert traces() == []
    assert d.from_b(tcp(B_IP, A_IP, 80, 40000, FIN | ACK)) == TC_ACT_OK  # FIN the other way
    assert [e.ct_state for e in traces()] == [ev.CT_REPLY]
    ((_, value),) = d.dp.ct.items()
    assert value.closing == 1 and value.packets == 8


def test_arp_passes_and_ipv6_is_dropped(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, 0)  # not even enforced: IPv6 is never policed, so never allowed
    assert d.to_b(frame(bytes(28), ethertype=0x0806)) == TC_ACT_OK
    assert d.events() == []
    ipv6 = frame(bytes([0x60]) + bytes(39), ethertype=0x86DD)
    assert d.to_b(ipv6) == TC_ACT_SHOT
    assert d.from_b(ipv6) == TC_ACT_SHOT
    assert [(e.type_name, e.reason, e.dir) for e in d.events()] == [
        ("DROP", 139, INGRESS), ("DROP", 139, EGRESS),
    ]  # fmt: skip


def fragments(ident: int, dport: int) -> tuple[bytes, bytes]:
    """The first and a later fragment of one UDP datagram from A to B."""
    first = ipv4(A_IP, B_IP, UDP, struct.pack("!HHHH", 1, dport, 1480, 0), frag=0x2000,
                 ident=ident)  # fmt: skip
    later = ipv4(A_IP, B_IP, UDP, b"tail-of-datagram", frag=185, ident=ident)
    return frame(first), frame(later)


def test_later_fragments_are_judged_with_their_first_fragments_ports(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    d.dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 10)
    d.port_set(10, allow=(line(UDP, 53),))
    first, later = fragments(0x101, 53)
    assert d.to_b(first) == TC_ACT_OK  # allowed: conntrack entry for 1 -> 53
    assert d.to_b(later) == TC_ACT_OK  # found its first fragment: same connection
    events = d.events()
    assert [e.ct_state for e in events if e.type_name == "TRACE"] == [ev.CT_NEW]
    first, later = fragments(0x102, 54)
    assert d.to_b(first) == TC_ACT_SHOT  # port 54 is not allowed
    assert d.to_b(later) == TC_ACT_SHOT  # judged as port 54 too
    assert {e.reason for e in d.events() if e.type_name == "DROP"} == {133}
    _, orphan = fragments(0x103, 53)
    assert d.to_b(orphan) == TC_ACT_SHOT  # its first fragment never came
    assert [(e.type_name, e.reason) for e in d.events()] == [("DROP", 175)]


def icmp_error(src: str, dst: str, quoted: bytes, icmp_type: int = 3, code: int = 3) -> bytes:
    """An ICMP error from src to dst quoting the IPv4 datagram ``quoted`` (header + 8 bytes)."""
    ihl = (quoted[0] & 0x0F) * 4
    body = struct.pack("!BBHI", icmp_type, code, 0, 0) + quoted[: ihl + 8]
    return frame(ipv4(src, dst, ICMP, body))


def test_icmp_errors_pass_with_their_connection(dp_env: Env) -> None:
    d = dp_env
    # B enforces both ways and only lets A in on UDP 53: no ICMP allowed anywhere.
    d.endpoint(d.b, lxc_flags(ingress_enforced=True, egress_enforced=True))
    d.dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 10)
    d.port_set(10, allow=(line(UDP, 53),))
    query = ipv4(A_IP, B_IP, UDP, struct.pack("!HHHH", 4000, 53, 9, 0) + b"q")
    assert d.to_b(frame(query)) == TC_ACT_OK
    d.events()
    # B answers with port unreachable about that datagram: related, it passes.
    assert d.from_b(icmp_error(B_IP, A_IP, query)) == TC_ACT_OK
    assert [(e.type_name, e.ct_state) for e in d.events()] == [("TRACE", ev.CT_RELATED)]
    # An error about a datagram no connection carried is plain ICMP: denied.
    stranger = ipv4(A_IP, B_IP, UDP, struct.pack("!HHHH", 4001, 53, 9, 0) + b"q")
    assert d.from_b(icmp_error(B_IP, A_IP, stranger)) == TC_ACT_SHOT
    assert {e.reason for e in d.events() if e.type_name == "DROP"} == {133}


def test_ip_options_are_skipped(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    d.dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 10)
    d.port_set(10, allow=(line(UDP, 53),))
    segment = struct.pack("!HHHH", 1234, 53, 9, 0) + b"q"
    packet = frame(ipv4(A_IP, B_IP, UDP, segment, options=bytes([1, 1, 1, 0])))
    assert d.to_b(packet) == TC_ACT_OK


def test_malformed_packets_drop_134(dp_env: Env) -> None:
    d = dp_env
    truncated_tcp = frame(ipv4(A_IP, B_IP, TCP, b"\x9c\x40"))
    bad_ihl = bytearray(udp(A_IP, B_IP, 1, 2))
    bad_ihl[14] = 0x43
    for packet in (truncated_tcp, bytes(bad_ihl)):
        assert d.to_b(packet) == TC_ACT_SHOT
    evs = d.events()
    assert kinds(evs) == [("DROP", "DROPPED", 134)] * 2
    assert d.dp.metrics.read()[134].packets == 2


def test_lost_events_are_counted(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    # Two events per denied packet into a 4 MiB ring of 64-byte records: some must be lost.
    d.run("to_container", d.b, tcp(A_IP, B_IP, 40000, 80, SYN), repeat=40000)
    assert d.dp.metrics.lost_events() > 0
    assert d.dp.metrics.read()[133].packets == 40000
    assert len(d.events()) + d.dp.metrics.lost_events() == 80000


def test_verdicts_hold_with_realistic_map_sizes(dp_env: Env) -> None:
    """The main paths give their verdicts among 2,000 other identities and policy entries,
    over many runs (their cost per packet is measured in bench/datapath_micro.py)."""
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    d.dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 10)
    d.port_set(10, allow=(line(TCP, 80),))
    for i in range(2000):
        d.dp.ipcache.set(f"10.{1 + i // 250}.{i % 250}.1/32", IPCacheValue(5000 + i))
        d.dp.policy.set(PolicyKey(5000 + i, B_EP, INGRESS), 10)
    assert d.to_b(tcp(A_IP, B_IP, 40000, 80, SYN)) == TC_ACT_OK
    assert d.run("to_container", d.b, tcp(A_IP, B_IP, 40000, 80, ACK), repeat=1000).retval == 0
    ((_, value),) = d.dp.ct.items()
    assert value.packets == 1001
    assert d.run("to_container", d.b, tcp(A_IP, B_IP, 40000, 81, SYN), repeat=1000).retval == 2
    assert d.dp.metrics.read()[133].packets == 1000
    d.events()
    d.dp.lxc.delete(d.a)
    assert d.run("to_container", d.a, tcp(A_IP, B_IP, 1, 80, ACK), repeat=1000).retval == 0
    assert len(d.dp.ct.items()) == 1  # not an endpoint: nothing tracked


def test_map_writes_typed_raw_batch_and_lpm_at_scale(dp_env: Env) -> None:
    """50,000 entries through each write path (their rates: bench/datapath_micro.py)."""
    d = dp_env
    n = 50_000
    keys = [PolicyKey(100_000 + i, B_EP, INGRESS) for i in range(n)]
    for key in keys:
        d.dp.policy.set(key, 7)
    assert len(d.dp.policy.items()) == n and d.dp.policy.get(keys[n // 2]) == 7
    raw = d.dp.policy.raw
    for key in keys:
        raw.update(key.pack(), (8).to_bytes(4, "little"))
    assert {v for _, v in d.dp.policy.items()} == {8}
    d.dp.policy.set_many((k, 9) for k in keys)
    assert {v for _, v in d.dp.policy.items()} == {9} and len(d.dp.policy.items()) == n
    for i in range(n):
        d.dp.ipcache.set(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32", IPCacheValue(i + 1))
    ipcache = dict(d.dp.ipcache.items())  # A's and B's entries were overwritten
    assert len(ipcache) == n and ipcache[f"{B_IP}/32"].identity == 3
    assert ipcache["10.0.195.79/32"].identity == (195 << 8 | 79) + 1


def test_events_consumed_from_a_thread(dp_env: Env) -> None:
    d = dp_env
    d.endpoint(d.b, lxc_flags(ingress_enforced=True))
    got: list[ev.DatapathEvent] = []
    stop = threading.Event()

    def consume() -> None:
        with d.dp.events() as reader:
            for event in reader.events(stop, timeout_ms=20):
                got.append(event)
                if len(got) == 4:
                    stop.set()

    worker = threading.Thread(target=consume, name="axt-events")
    worker.start()
    try:
        time.sleep(0.05)  # the reader is waiting in ring_buffer__poll
        for sport in (1, 2):
            assert d.to_b(tcp(A_IP, B_IP, sport, 80, SYN)) == TC_ACT_SHOT
    finally:
        worker.join(timeout=5)
        stop.set()
    assert not worker.is_alive()
    assert [(e.type_name, e.sport) for e in got] == [
        ("POLICY_VERDICT", 1),
        ("DROP", 1),
        ("POLICY_VERDICT", 2),
        ("DROP", 2),
    ]
