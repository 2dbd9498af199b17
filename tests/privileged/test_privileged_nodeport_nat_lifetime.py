"""North-south NAT entries have lifetimes (bpf/lib/nodeport.h), at tc and in XDP.

The real bpf_host.o and bpf_xdp.o are loaded into a private pin directory and
driven with BPF_PROG_TEST_RUN inside a private ``axt-np-nat-…`` namespace, as
test_privileged_nodeport_reject.py does. Time is simulated by writing
``axo_lb_nat`` entries with old ``last_seen`` seconds: an expired forward
entry, or a closing one hit by a new SYN, is replaced by a new selection (its
old reverse entry goes); a live one keeps its backend and is refreshed, with its
partner; stale SNAT reverse entries no longer lock a client's ports. The GC
(datapath/ctgc.py ``collect_nat``) then runs on the same real map.

Then a 2-node lab: a world client served by backend A from a fixed source
port (TCP and UDP) is served by B from the same port once A's pod is deleted,
and node1's NAT entries of A are gone (the agent's purge), where before they
sent the reused port to the deleted pod.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from axoneme.agent import ctgc as agent_ctgc
from axoneme.datapath.ctgc import collect_nat
from axoneme.datapath.linux import bpfsys, hostlb, xdplb
from axoneme.datapath.linux.lbmaps import (
    LB_BE_LOCAL,
    LB_F_NODEPORT,
    NAT_F_CLOSING,
    NAT_F_EGRESS,
    NAT_F_ESTABLISHED,
    NAT_F_INGRESS,
    NAT_F_REDIRECT,
    Backend,
    Nat,
    NatKey,
    SvcKey,
    SvcValue,
    pack_slot_key,
)
from axoneme.datapath.linux.maps import IPCacheValue, NatMap
from axoneme.kit.netns import entered
from axoneme.lab.topology import BPF_PIN_ROOT
from axoneme.metrics import REGISTRY
from privileged.bpfenv import private_datapath
from privileged.helpers import (
    apply,
    ax,
    manifest,
    namespace,
    node_ips,
    node_port_service,
    pod_manifest,
    pods,
    wait_for,
    wait_pods,
    world_http,
    world_udp,
)
from privileged.scrape import scrape, value
from privileged.test_privileged_datapath_progrun import skb_ctx, tcp, udp

pytestmark = pytest.mark.privileged

TC_ACT_OK, XDP_PASS = 0, 2
TCP, UDP = 6, 17
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
NODE_IP, CLIENT = "10.99.0.1", "203.0.113.7"
LOCAL_PORT, REMOTE_PORT = 30400, 30401
LOCAL_BE, REMOTE_BE, GONE_BE = "10.0.1.10", "10.0.2.10", "10.0.9.9"
BE_PORT = 8080
NODE_MAC, CLIENT_MAC = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")
NAT_TRIES = 8


@dataclass
class Env:
    netns: str
    pin_dir: Path
    tc_fd: int
    xdp_fd: int
    ifindex: int

    def tc(self, packet: bytes) -> bpfsys.TestRun:
        with entered(self.netns):
            return bpfsys.prog_test_run(self.tc_fd, packet, ctx=skb_ctx(self.ifindex))

    def xdp(self, packet: bytes) -> bpfsys.TestRun:
        with entered(self.netns):
            return bpfsys.prog_test_run(self.xdp_fd, packet)

    def nat(self) -> dict[NatKey, Nat]:
        with NatMap.open(self.pin_dir) as m:
            return dict(m.items())

    def put(self, key: NatKey, value: Nat) -> None:
        with NatMap.open(self.pin_dir) as m:
            m.set(key, value)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with private_datapath("axt-np-nat", ("eth0", "peer0")) as p:
        p.dp.ipcache.set(f"{NODE_IP}/32", IPCacheValue(1))
        hostlb.load(p.pin_dir)
        xdplb.load(p.pin_dir)
        hostlb.set_node_ip(p.pin_dir, NODE_IP)
        hostlb.set_mode(p.pin_dir, dsr=False)
        pins = p.pin_dir
        with (
            bpfsys.BpfMap.open_pinned(pins / "axo_lb_svc") as svc,
            bpfsys.BpfMap.open_pinned(pins / "axo_lb_slot") as slot,
            bpfsys.BpfMap.open_pinned(pins / "axo_lb_backend") as backend,
        ):
            # One backend each, so the choice is known: a local one and a remote one.
            for svc_id, port, be_id, be in (
                (7, LOCAL_PORT, 1, Backend(LOCAL_BE, BE_PORT, TCP, LB_BE_LOCAL, 7)),
                (8, REMOTE_PORT, 2, Backend(REMOTE_BE, BE_PORT, TCP, 0, 8)),
                (9, LOCAL_PORT, 3, Backend(LOCAL_BE, BE_PORT, UDP, LB_BE_LOCAL, 9)),
            ):
                backend.update(be_id.to_bytes(4, "little"), be.pack())
                slot.update(pack_slot_key(svc_id, 1), be_id.to_bytes(4, "little"))
                svc.update(
                    SvcKey(NODE_IP, port, be.proto).pack(),
                    SvcValue(svc_id, 1, LB_F_NODEPORT).pack(),
                )
        tc_fd = bpfsys.obj_get(pins / "prog_from_netdev")
        xdp_fd = bpfsys.obj_get(pins / "prog_xdp_nodeport")
        try:
            yield Env(p.netns, pins, tc_fd, xdp_fd, p.ifindex["eth0"])
        finally:
            os.close(tc_fd)
            os.close(xdp_fd)


@pytest.fixture
def nat(env: Env) -> Env:
    with NatMap.open(env.pin_dir) as m:
        m.clear()
    return env


def now_s() -> int:
    return time.monotonic_ns() // 1_000_000_000


def seg(sport: int, flags: int, dport: int = LOCAL_PORT) -> bytes:
    """A TCP segment from the client to the node's frontend."""
    return NODE_MAC + CLIENT_MAC + tcp(CLIENT, NODE_IP, sport, dport, flags)[12:]


def fwd_key(sport: int, dport: int = LOCAL_PORT, proto: int = TCP) -> NatKey:
    return NatKey(CLIENT, NODE_IP, sport, dport, proto)


def old_flow(env: Env, sport: int, flags: int, age: int, proto: int = TCP) -> None:
    """A flow (client:sport -> frontend) of a local backend GONE_BE seen age seconds ago."""
    last = now_s() - age
    env.put(
        fwd_key(sport, proto=proto),
        Nat(CLIENT, GONE_BE, sport, BE_PORT, NAT_F_INGRESS | flags, last),
    )
    env.put(NatKey(GONE_BE, CLIENT, BE_PORT, sport, proto),
            Nat(NODE_IP, CLIENT, LOCAL_PORT, sport, NAT_F_EGRESS | flags, last))  # fmt: skip


def daddr(out: bytes) -> str:
    return ".".join(str(b) for b in out[30:34])


RUNNERS = ["tc", "xdp"]


def run(env: Env, hook: str, packet: bytes) -> bpfsys.TestRun:
    result = env.tc(packet) if hook == "tc" else env.xdp(packet)
    assert result.retval == (TC_ACT_OK if hook == "tc" else XDP_PASS)
    return result


@pytest.mark.parametrize("hook", RUNNERS)
def test_an_expired_forward_entry_is_replaced_by_a_new_selection(nat: Env, hook: str) -> None:
    old_flow(nat, 40001, NAT_F_ESTABLISHED, 21600 + 2)  # established, idle for 6 h and more
    out = run(nat, hook, seg(40001, ACK))
    assert daddr(out.data) == LOCAL_BE
    entries = nat.nat()
    fwd = entries[fwd_key(40001)]
    assert (fwd.daddr, fwd.dport) == (LOCAL_BE, BE_PORT)
    assert fwd.flags == NAT_F_INGRESS | NAT_F_ESTABLISHED
    assert abs(fwd.last_seen - now_s()) <= 1
    # The old reverse entry went with it; the new one is the local backend's.
    assert NatKey(GONE_BE, CLIENT, BE_PORT, 40001, TCP) not in entries
    rev = entries[NatKey(LOCAL_BE, CLIENT, BE_PORT, 40001, TCP)]
    assert (rev.saddr, rev.sport, rev.flags) == (
        NODE_IP,
        LOCAL_PORT,
        NAT_F_EGRESS | NAT_F_ESTABLISHED,
    )


@pytest.mark.parametrize("hook", RUNNERS)
def test_a_syn_on_a_closing_entry_reselects(nat: Env, hook: str) -> None:
    old_flow(nat, 40002, NAT_F_ESTABLISHED | NAT_F_CLOSING, 2)  # FIN seen 2 s ago: live
    # The closing flow's own segments (a retransmitted FIN-ACK) still follow it.
    assert daddr(run(nat, hook, seg(40002, FIN | ACK)).data) == GONE_BE
    # A new connection on the same 4-tuple chooses again.
    assert daddr(run(nat, hook, seg(40002, SYN)).data) == LOCAL_BE
    entries = nat.nat()
    fwd = entries[fwd_key(40002)]
    assert (fwd.daddr, fwd.flags) == (LOCAL_BE, NAT_F_INGRESS)  # in its handshake again
    assert NatKey(GONE_BE, CLIENT, BE_PORT, 40002, TCP) not in entries


@pytest.mark.parametrize("hook", RUNNERS)
def test_a_live_entry_keeps_its_backend_and_is_refreshed_with_its_partner(
    nat: Env, hook: str
) -> None:
    old_flow(nat, 40003, NAT_F_ESTABLISHED, 3600)  # idle for an hour: within 6 h
    before = now_s()
    assert daddr(run(nat, hook, seg(40003, ACK)).data) == GONE_BE
    entries = nat.nat()
    fwd, rev = entries[fwd_key(40003)], entries[NatKey(GONE_BE, CLIENT, BE_PORT, 40003, TCP)]
    assert fwd.last_seen >= before and rev.last_seen >= before
    assert fwd.flags == NAT_F_INGRESS | NAT_F_ESTABLISHED
    # A FIN marks both closing (10 s from now on).
    run(nat, hook, seg(40003, FIN | ACK))
    entries = nat.nat()
    assert entries[fwd_key(40003)].flags & NAT_F_CLOSING
    assert entries[NatKey(GONE_BE, CLIENT, BE_PORT, 40003, TCP)].flags & NAT_F_CLOSING


@pytest.mark.parametrize("hook", RUNNERS)
def test_udp_entries_live_sixty_seconds(nat: Env, hook: str) -> None:
    packet = NODE_MAC + CLIENT_MAC + udp(CLIENT, NODE_IP, 5353, LOCAL_PORT)[12:]
    old_flow(nat, 5353, 0, 30, proto=UDP)
    assert daddr(run(nat, hook, packet).data) == GONE_BE  # 30 s idle: kept
    old_flow(nat, 5353, 0, 62, proto=UDP)
    assert daddr(run(nat, hook, packet).data) == LOCAL_BE  # 62 s idle: chosen again


def snat_rev_key(port: int) -> NatKey:
    return NatKey(REMOTE_BE, NODE_IP, BE_PORT, port, TCP)


def test_stale_snat_reverse_entries_do_not_lock_a_client_port(nat: Env) -> None:
    """Eight other clients once used this client's port towards the same remote
    backend; their reverse entries held every SNAT port NAT_TRIES tries."""
    sport = 41000
    ports = [(sport + i * 7919) % 65536 for i in range(NAT_TRIES)]
    last = now_s()
    for i, port in enumerate(ports):
        nat.put(snat_rev_key(port), Nat(NODE_IP, f"198.51.100.{i + 1}", REMOTE_PORT, sport,
                                        NAT_F_INGRESS | NAT_F_REDIRECT, last))  # fmt: skip
    # While they live the new flow finds no port: dropped, nothing written.
    nat.tc(seg(sport, SYN, REMOTE_PORT))
    assert fwd_key(sport, REMOTE_PORT) not in nat.nat()
    # Once they are expired (handshakes 61 s old) the first try is free again. (The
    # packet then has no route out in this namespace; the entries are what counts.)
    for i, port in enumerate(ports):
        nat.put(snat_rev_key(port), Nat(NODE_IP, f"198.51.100.{i + 1}", REMOTE_PORT, sport,
                                        NAT_F_INGRESS | NAT_F_REDIRECT, last - 61))  # fmt: skip
    nat.tc(seg(sport, SYN, REMOTE_PORT))
    entries = nat.nat()
    fwd = entries[fwd_key(sport, REMOTE_PORT)]
    assert (fwd.saddr, fwd.sport, fwd.daddr, fwd.dport) == (NODE_IP, sport, REMOTE_BE, BE_PORT)
    rev = entries[snat_rev_key(sport)]
    assert (rev.daddr, rev.dport, rev.saddr, rev.sport) == (CLIENT, sport, NODE_IP, REMOTE_PORT)
    assert abs(rev.last_seen - now_s()) <= 1


def test_gc_deletes_expired_entries_only(nat: Env) -> None:
    old_flow(nat, 42001, NAT_F_ESTABLISHED, 3600)  # live
    old_flow(nat, 42002, NAT_F_ESTABLISHED | NAT_F_CLOSING, 11)  # closed 11 s ago
    old_flow(nat, 42003, 0, 61)  # a handshake that never finished
    old_flow(nat, 42004, 0, 30, proto=UDP)  # live
    with NatMap.open(nat.pin_dir) as m:
        result = collect_nat(m)
        assert (result.alive, result.deleted) == (4, 4)
        assert {k.sport if k.saddr == CLIENT else k.dport for k, _ in m.items()} == {42001, 42004}
        assert collect_nat(m).deleted == 0
    # The agent's pass over the pinned map, and its families.
    old_flow(nat, 42005, 0, 61)
    runs = REGISTRY.get_sample_value("axoneme_datapath_nat_gc_runs_total") or 0.0
    result = agent_ctgc.collect_nat_pinned(nat.pin_dir)
    assert result is not None
    agent_ctgc.record_nat(result)
    sample = REGISTRY.get_sample_value
    assert sample("axoneme_datapath_nat_gc_entries", {"status": "deleted"}) == 2
    assert sample("axoneme_datapath_nat_gc_entries", {"status": "alive"}) == 4
    assert sample("axoneme_datapath_nat_gc_runs_total") == runs + 1


# ---- the lab: a world client reusing its source port -------------------------------

NS = "np-natlife"
HTTP, DNS = 31780, 31753


def web(name: str) -> dict[str, Any]:
    return pod_manifest(NS, name, "node2", {"app": "web"}, [(8080, "TCP"), (5353, "UDP")])


def nat_entries_of(node: str, ip: str) -> list[tuple[NatKey, Nat]]:
    """node's axo_lb_nat entries of flows to ip: translating to it, or keyed by it."""
    with NatMap.open(BPF_PIN_ROOT / node) as m:
        return [
            (k, v)
            for k, v in m.items()
            if k.saddr == ip or (v.flags & NAT_F_INGRESS and v.daddr == ip)
        ]


@pytest.mark.lab
def test_a_reused_client_port_follows_the_service_not_a_deleted_backend(
    lab: dict[str, Any],
) -> None:
    apply(namespace(NS), web("web-a"), node_port_service(NS, "web", {"app": "web"}, HTTP, DNS))
    a_ip = wait_pods(NS, {"web-a"})["web-a"]["status"]["podIP"]
    node1 = node_ips(lab)["node1"]  # the backends are on node2: SNAT from node1
    wait_for(lambda: world_http(node1, HTTP)["name"] == "web-a", 30, "the NodePort serving web-a")
    assert world_http(node1, HTTP, bind_port=47001)["name"] == "web-a"
    assert world_udp(node1, DNS, b"one", bind_port=47002)[0] == b"one"
    # Both flows' forward entries translate to A (the wait's flows have entries too).
    assert {(k.sport, k.proto) for k, _ in nat_entries_of("node1", a_ip)} >= {
        (47001, TCP),
        (47002, UDP),
    }

    apply(web("web-b"))
    wait_pods(NS, {"web-a", "web-b"})
    ax("delete", "-f", "-", stdin=manifest(web("web-a")))
    # The agent deleted A's entries as A left the service (the UDP one was live).
    wait_for(lambda: not nat_entries_of("node1", a_ip), 30, "web-a's NAT entries purged")
    wait_for(lambda: "web-a" not in pods(NS), 30, "web-a deleted")
    # The same source ports: a new choice, which can only be web-b.
    assert world_http(node1, HTTP, bind_port=47001, timeout=3)["name"] == "web-b"
    assert world_udp(node1, DNS, b"two", bind_port=47002, timeout=3)[0] == b"two"
    # The agent's GC walks node1's NAT map too (every 30 s, the first at start).
    wait_for(
        lambda: (value(scrape(node1), "axoneme_datapath_nat_gc_runs_total") or 0) >= 1,
        40,
        "node1's agent reporting a NAT GC run",
    )
    ax("delete", "-f", "-", stdin=manifest(namespace(NS)), check=False)
