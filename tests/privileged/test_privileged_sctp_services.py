"""SCTP to services: per-packet translation at the pod's tc hooks (bpf/lib/lbxlate.h).

First the real bpf_lxc.o driven with BPF_PROG_TEST_RUN: client A and local
backend B are the two ends of a veth pair in a private ``axt-sctp-lb-…``
namespace, a second backend R lives "on another node" (ipcache only), and the
service maps are written by the agent's own writer (``LBWriter``). Packets
are crafted, the programs' output is read back byte for byte.

Then a 2-node lab: a Service with an SCTP port selecting workload pods on
both nodes, probed by the probe engine (INIT -> INIT ACK over raw sockets)
from a client pod: the answer must come from the service address, probes
spread over both backends, a targetPort other than the port is dropped with
its reason, and policy on the backend applies.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from axoneme.datapath import events as ev
from axoneme.datapath.linux import bpfsys
from axoneme.datapath.linux.lbmaps import (
    LB_XLATE_FWD,
    XLATE_MAP,
    SvcKey,
    SvcValue,
    Xlate,
    XlateKey,
)
from axoneme.datapath.linux.lbwriter import LBWriter
from axoneme.datapath.linux.loader import Datapath
from axoneme.datapath.linux.maps import (
    CFG_HOST_ROUTING_BPF,
    EGRESS,
    CtKey,
    DatapathConfig,
    IPCacheValue,
    LxcInfo,
    MetricsMap,
    PolicyKey,
    lxc_flags,
)
from axoneme.datapath.linux.ringbuf import EventReader
from axoneme.datapath.portsets import port_entries
from axoneme.kit.netns import entered
from axoneme.lab.topology import BPF_PIN_ROOT, pod_netns
from axoneme.loadbalancer.state import BackendAddr, Frontend
from axoneme.policy.types import PortVerdicts
from axoneme.probe import run
from axoneme.probe.run import ProbeTarget
from privileged.bpfenv import private_datapath
from privileged.helpers import (
    apply,
    apply_policies,
    ax,
    clear_policies,
    cnp,
    namespace,
    observed_flows,
    pod_manifest,
    wait_for,
    wait_pods,
)
from privileged.test_privileged_datapath_progrun import _csum, frame, ipv4, skb_ctx, tcp

pytestmark = pytest.mark.privileged

TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = 0, 2, 7
TCP, SCTP = 6, 132
SYN = 0x02
A_IP, B_IP, R_IP = "10.0.0.1", "10.0.0.2", "10.0.1.2"  # client, local backend, remote backend
A_ID, B_ID, R_ID = 1001, 1002, 1003
A_EP, B_EP = 1, 2
VIP = "10.96.7.1"
PORT = 9000  # every service here, its backends' port too, except:
MISMATCH_PORT, TARGET_PORT = 9100, 9200  # a service whose targetPort differs
AFFINITY_PORT, EMPTY_PORT, LOCAL_PORT, REMOTE_PORT = 9300, 9400, 9500, 9600
MAGLEV = 251
SERVICE_BACKEND_NOT_FOUND, L4_CSUM = 158, 154


# ---- packets -----------------------------------------------------------------------------


def sctp(src: str, dst: str, sport: int, dport: int, vtag: int = 0) -> bytes:
    """An SCTP common header with an INIT-like chunk (the bytes the datapath must keep)."""
    chunk = struct.pack("!BBHIIHHI", 1, 0, 20, 0x1234, 65535, 10, 10, 77)
    header = struct.pack("!HHII", sport, dport, vtag, 0xDEADBEEF)  # CRC untouched either way
    return frame(ipv4(src, dst, SCTP, header + chunk))


def ip_of(packet: bytes) -> tuple[str, str]:
    return socket.inet_ntoa(packet[26:30]), socket.inet_ntoa(packet[30:34])


def check_rewritten(out: bytes, sent: bytes, src: str, dst: str) -> None:
    """``out`` is ``sent`` with only these addresses and a valid header checksum."""
    assert ip_of(out) == (src, dst)
    assert _csum(out[14:34]) == 0, "bad IPv4 header checksum"
    assert out[:26] == sent[:24] + out[24:26]  # L2 and the header up to the checksum
    assert out[34:] == sent[34:]  # the SCTP packet, CRC32c included, is untouched


# ---- the environment ---------------------------------------------------------------------


def frontend(port: int, *backends: tuple[str, int], **extra: Any) -> Frontend:
    addrs = tuple(BackendAddr(ip, p, "SCTP") for ip, p in backends)
    return Frontend(VIP, port, "SCTP", "ClusterIP", "demo/sctp", f"p{port}", addrs, addrs,
                    **extra)  # fmt: skip


FRONTENDS = (
    frontend(PORT, (B_IP, PORT), (R_IP, PORT)),
    frontend(MISMATCH_PORT, (B_IP, TARGET_PORT)),
    frontend(AFFINITY_PORT, (B_IP, AFFINITY_PORT), (R_IP, AFFINITY_PORT), affinity_timeout=60),
    frontend(EMPTY_PORT),
    frontend(LOCAL_PORT, (B_IP, LOCAL_PORT)),
    frontend(REMOTE_PORT, (R_IP, REMOTE_PORT)),
    # TCP on the same address and port: the socket LB's, never translated at tc.
    Frontend(VIP, PORT, "TCP", "ClusterIP", "demo/sctp", "tcp",
             (BackendAddr(B_IP, PORT, "TCP"),), (BackendAddr(B_IP, PORT, "TCP"),)),
)  # fmt: skip


@dataclass
class Env:
    netns: str
    pin_dir: Path
    dp: Datapath
    reader: EventReader
    a: int  # ifindex of client A's host veth
    b: int  # backend B's

    def run(self, program: str, ifindex: int, packet: bytes) -> bpfsys.TestRun:
        with entered(self.netns):
            return bpfsys.prog_test_run(self.dp.program_fd(program), packet, ctx=skb_ctx(ifindex))

    def from_a(self, packet: bytes) -> bpfsys.TestRun:
        return self.run("from_container", self.a, packet)

    def xlate(self) -> dict[XlateKey, Xlate]:
        with bpfsys.BpfMap.open_pinned(self.pin_dir / XLATE_MAP) as m:
            return {XlateKey.unpack(k): Xlate.unpack(v) for k, v in m.items()}

    def drops(self) -> list[ev.DatapathEvent]:
        return [e for e in self.reader.consume() if e.type == ev.EVENT_DROP]


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with private_datapath("axt-sctp-lb", ("va", "vb")) as p:
        writer = LBWriter.open(p.pin_dir)  # the maps bpf_lxc.o pinned
        try:
            writer.sync(FRONTENDS, MAGLEV, "n1")
        finally:
            writer.close()
        yield Env(p.netns, p.pin_dir, p.dp, p.reader, p.ifindex["va"], p.ifindex["vb"])


@pytest.fixture
def sctp_env(env: Env) -> Env:
    """Endpoints A and B (nothing enforced), R in the ipcache; no flows, no events."""
    dp = env.dp
    for m in (dp.lxc, dp.lxc_ip, dp.ipcache, dp.policy, dp.ports, dp.ct):
        m.clear()
    dp.config.set(DatapathConfig())  # the stack routes
    for name in (XLATE_MAP, "axo_lb_affinity"):
        with bpfsys.BpfMap.open_pinned(env.pin_dir / name) as m:
            m.clear()
    dp.metrics.reset()
    env.reader.consume()
    dp.lxc.set(env.a, LxcInfo(A_EP, A_ID, A_IP, 0, "02:00:00:00:00:0a", "02:00:00:00:00:1a"))
    dp.lxc.set(env.b, LxcInfo(B_EP, B_ID, B_IP, 0, "02:00:00:00:00:0b", "02:00:00:00:00:1b"))
    for ip, identity in ((A_IP, A_ID), (B_IP, B_ID), (R_IP, R_ID)):
        dp.ipcache.set(f"{ip}/32", IPCacheValue(identity))
    return env


# ---- the datapath, case by case ---------------------------------------------------------


def test_cluster_ip_goes_to_a_backend_with_only_the_destination_rewritten(sctp_env: Env) -> None:
    sent = sctp(A_IP, VIP, 40000, PORT)
    result = sctp_env.from_a(sent)
    assert result.retval == TC_ACT_OK
    backend = ip_of(result.data)[1]
    assert backend in (B_IP, R_IP)
    check_rewritten(result.data, sent, A_IP, backend)
    # Conntrack (and so policy) saw the backend, not the service.
    assert CtKey(A_IP, backend, 40000, PORT, SCTP, EGRESS) in dict(sctp_env.dp.ct.items())
    flows = sctp_env.xlate()
    assert flows[XlateKey(A_IP, VIP, 40000, PORT, SCTP)].addr == backend
    assert flows[XlateKey(A_IP, VIP, 40000, PORT, SCTP)].dir == LB_XLATE_FWD
    assert flows[XlateKey(backend, A_IP, PORT, 40000, SCTP)].addr == VIP


def test_an_association_keeps_its_backend_and_new_ones_spread(sctp_env: Env) -> None:
    first = {sport: ip_of(sctp_env.from_a(sctp(A_IP, VIP, sport, PORT)).data)[1]
             for sport in range(41000, 41064)}  # fmt: skip
    assert set(first.values()) == {B_IP, R_IP}  # all on one: 2 chances in 2^64
    for _ in range(3):
        for sport, backend in first.items():
            out = sctp_env.from_a(sctp(A_IP, VIP, sport, PORT, vtag=0x55)).data
            assert ip_of(out)[1] == backend, sport


def test_client_ip_affinity_keeps_the_client_on_one_backend(sctp_env: Env) -> None:
    chosen = {ip_of(sctp_env.from_a(sctp(A_IP, VIP, sport, AFFINITY_PORT)).data)[1]
              for sport in range(42000, 42032)}  # fmt: skip
    assert len(chosen) == 1 and chosen <= {B_IP, R_IP}


def test_target_port_other_than_port_is_dropped_with_its_reason(sctp_env: Env) -> None:
    result = sctp_env.from_a(sctp(A_IP, VIP, 40001, MISMATCH_PORT))
    assert result.retval == TC_ACT_SHOT
    (drop,) = sctp_env.drops()
    assert (drop.reason, drop.reason_name) == (L4_CSUM, "ERROR_WHILE_CORRECTING_L4_CHECKSUM")
    assert (drop.saddr, drop.daddr, drop.dport, drop.proto) == (A_IP, VIP, MISMATCH_PORT, SCTP)
    assert sctp_env.dp.metrics.read()[L4_CSUM].packets == 1
    assert sctp_env.xlate() == {}  # nothing kept: the next packet is refused as well


def test_frontend_without_backends_is_dropped_as_backend_not_found(sctp_env: Env) -> None:
    assert sctp_env.from_a(sctp(A_IP, VIP, 40002, EMPTY_PORT)).retval == TC_ACT_SHOT
    assert [d.reason for d in sctp_env.drops()] == [SERVICE_BACKEND_NOT_FOUND]


def test_reply_gets_the_service_address_back_in_to_container(sctp_env: Env) -> None:
    assert ip_of(sctp_env.from_a(sctp(A_IP, VIP, 40003, LOCAL_PORT)).data)[1] == B_IP
    reply = sctp(B_IP, A_IP, LOCAL_PORT, 40003, vtag=0x1234)
    result = sctp_env.run("to_container", sctp_env.a, reply)
    assert result.retval == TC_ACT_OK
    check_rewritten(result.data, reply, VIP, A_IP)
    # A reply from the backend to a port with no such flow stays as it is.
    other = sctp(B_IP, A_IP, LOCAL_PORT, 40099)
    assert sctp_env.run("to_container", sctp_env.a, other).data == other


def test_reply_delivered_inline_by_host_routing_gets_the_service_address(sctp_env: Env) -> None:
    """B's reply leaves B (from_container), A's ingress runs inline and the
    packet goes by redirect_peer, skipping to_container: translated there."""
    sctp_env.dp.config.set(DatapathConfig(CFG_HOST_ROUTING_BPF))
    sctp_env.dp.lxc_ip.set(A_IP, sctp_env.a)
    sctp_env.dp.lxc_ip.set(B_IP, sctp_env.b)
    out = sctp_env.from_a(sctp(A_IP, VIP, 40004, LOCAL_PORT))
    assert out.retval == TC_ACT_REDIRECT and ip_of(out.data) == (A_IP, B_IP)
    reply = sctp(B_IP, A_IP, LOCAL_PORT, 40004, vtag=0x1234)
    result = sctp_env.run("from_container", sctp_env.b, reply)
    assert result.retval == TC_ACT_REDIRECT
    assert ip_of(result.data) == (VIP, A_IP)
    assert _csum(result.data[14:34]) == 0, "bad IPv4 header checksum"
    assert result.data[34:] == reply[34:]


def test_egress_policy_is_enforced_on_the_translated_backend(sctp_env: Env) -> None:
    """A may send SCTP to B's identity only: the service whose backend is B
    passes, the one whose backend is R is denied, and the drop names R."""
    dp = sctp_env.dp
    dp.lxc.set(sctp_env.a, LxcInfo(A_EP, A_ID, A_IP, lxc_flags(egress_enforced=True)))
    dp.ports.write_set(7, port_entries(PortVerdicts(((SCTP << 16, SCTP << 16 | 0xFFFF),), ())), 7)
    dp.policy.set(PolicyKey(B_ID, A_EP, EGRESS), 7)
    assert sctp_env.from_a(sctp(A_IP, VIP, 40005, LOCAL_PORT)).retval == TC_ACT_OK
    assert sctp_env.from_a(sctp(A_IP, VIP, 40005, REMOTE_PORT)).retval == TC_ACT_SHOT
    (drop,) = sctp_env.drops()
    assert (drop.reason_name, drop.daddr, drop.dport) == ("POLICY_DENIED", R_IP, REMOTE_PORT)


def test_tcp_to_the_same_address_and_port_is_untouched(sctp_env: Env) -> None:
    sent = tcp(A_IP, VIP, 40006, PORT, SYN)
    result = sctp_env.from_a(sent)
    assert (result.retval, result.data) == (TC_ACT_OK, sent)
    assert sctp_env.xlate() == {}
    reply = tcp(B_IP, A_IP, PORT, 40006, SYN | 0x10)
    assert sctp_env.run("to_container", sctp_env.a, reply).data == reply


# ---- the lab: probes from a pod ---------------------------------------------------------

NS = "sctp-svc"
SVC_PORT = 9000


def netns_of(pod: dict[str, Any]) -> str:
    m = pod["metadata"]
    return f"/run/netns/{pod_netns(m['namespace'], m['name'], m['uid'])}"


def sctp_service(name: str, port: int, target_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"app": "sctp"},
            "ports": [{"name": "s", "port": port, "protocol": "SCTP", "targetPort": target_port}],
        },
    }


def cluster_ip(name: str) -> str:
    items = json.loads(ax("get", "svc", "-n", NS, "-o", "json").stdout)["items"]
    return str(next(s for s in items if s["metadata"]["name"] == name)["spec"]["clusterIP"])


def lb_count(node: str, ip: str, port: int) -> int:
    with bpfsys.BpfMap.open_pinned(BPF_PIN_ROOT / node / "axo_lb_svc") as m:
        raw = m.lookup(SvcKey(ip, port, SCTP).pack())
    return SvcValue.unpack(raw).count if raw is not None else -1


def probe_many(client: dict[str, Any], vip: str, port: int, n: int) -> list[run.ProbeResult]:
    targets = [ProbeTarget(netns_of(client), vip, port, "SCTP") for _ in range(n)]
    return asyncio.run(run.probe_many(targets, timeout=2.0, concurrency=8))


@pytest.fixture(scope="module")
def svc(lab: dict[str, Any]) -> dict[str, Any]:
    """Workload pods serving SCTP 9000 on both nodes, a client on node1, and the
    Services: ``sctp`` (9000 -> 9000) and ``sctp-remap`` (9100 -> 9000)."""
    apply(
        namespace(NS),
        pod_manifest(NS, "be-1", "node1", {"app": "sctp", "pod": "be-1"}, [(SVC_PORT, "SCTP")]),
        pod_manifest(NS, "be-2", "node2", {"app": "sctp", "pod": "be-2"}, [(SVC_PORT, "SCTP")]),
        pod_manifest(NS, "client", "node1", {"app": "client"}, []),
        sctp_service("sctp", SVC_PORT, SVC_PORT),
        sctp_service("sctp-remap", 9100, SVC_PORT),
    )
    pods = wait_pods(NS, {"be-1", "be-2", "client"})
    vip, remap = cluster_ip("sctp"), cluster_ip("sctp-remap")
    wait_for(lambda: lb_count("node1", vip, SVC_PORT) == 2, 20, f"{vip}:{SVC_PORT}/SCTP on node1")
    wait_for(lambda: lb_count("node1", remap, 9100) == 2, 20, f"{remap}:9100/SCTP on node1")
    ips = {name: pods[name]["status"]["podIP"] for name in ("be-1", "be-2", "client")}
    return {"pods": pods, "vip": vip, "remap": remap, "ips": ips}


def answered_by(svc: dict[str, Any], since: str) -> Counter[str]:
    """Backends whose SCTP packets entered the client since ``since``, per observe
    on node1. Only replies go from a backend to the client, and the client's
    ingress records them before their source becomes the service again."""
    client, backends = svc["ips"]["client"], {svc["ips"]["be-1"], svc["ips"]["be-2"]}
    flows = observed_flows("--node", "node1", "--to-ip", client, "--protocol", "sctp",
                           "--since", since, last=2000)  # fmt: skip
    return Counter(f["IP"]["source"] for f in flows if f["IP"]["source"] in backends)


@pytest.mark.lab
def test_sctp_cluster_ip_reachable_from_a_pod(svc: dict[str, Any]) -> None:
    """INIT to the cluster IP is answered by INIT ACK *from the cluster IP*: the
    probe only counts an answer from the address it probed."""
    target = f"{svc['vip']}:{SVC_PORT}/SCTP"
    out = ax("probe", "--timeout", "2", f"{NS}/client", target, check=False)
    assert (out.returncode, out.stdout.split()[:1]) == (0, ["reachable"]), out
    (result,) = probe_many(svc["pods"]["client"], svc["vip"], SVC_PORT, 1)
    assert (result.outcome, result.detail) == ("reachable", "INIT ACK")


@pytest.mark.lab
def test_sctp_probes_spread_over_both_backends(svc: dict[str, Any]) -> None:
    since = datetime.now(UTC).isoformat()
    results = probe_many(svc["pods"]["client"], svc["vip"], SVC_PORT, 40)
    assert Counter(r.outcome for r in results) == {"reachable": 40}
    answered = wait_for(lambda: len(c := answered_by(svc, since)) == 2 and c, 10,
                        "replies from both backends in observe")  # fmt: skip
    assert set(answered) == {svc["ips"]["be-1"], svc["ips"]["be-2"]}, answered


@pytest.mark.lab
def test_sctp_target_port_other_than_port_is_dropped(svc: dict[str, Any]) -> None:
    (result,) = probe_many(svc["pods"]["client"], svc["remap"], 9100, 1)
    assert result.outcome == "timeout", result
    flows = wait_for(
        lambda: [
            f
            for f in observed_flows("--node", "node1", "--verdict", "DROPPED", "--protocol", "sctp")
            if f["IP"]["destination"] == svc["remap"]
        ],
        10,
        "the drop in observe",
    )
    assert flows[-1]["dropReasonDesc"] == "ERROR_WHILE_CORRECTING_L4_CHECKSUM", flows[-1]
    with MetricsMap.open(BPF_PIN_ROOT / "node1") as metrics:
        assert metrics.read()[L4_CSUM].packets >= 1


@pytest.mark.lab
def test_sctp_policy_applies_to_the_backend(svc: dict[str, Any]) -> None:
    """A CNP on the backends denying the client's SCTP makes the cluster IP
    unreachable; without it, reachable again."""
    deny = cnp(NS, "deny-sctp", {
        "endpointSelector": {"matchLabels": {"app": "sctp"}},
        "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                         "toPorts": [{"ports": [{"port": str(SVC_PORT), "protocol": "SCTP"}]}]}],
        "ingress": [{"fromEntities": ["all"]}],
    })  # fmt: skip
    apply_policies(deny)
    try:
        results = probe_many(svc["pods"]["client"], svc["vip"], SVC_PORT, 6)
        assert [r.outcome for r in results] == ["timeout"] * 6, results
    finally:
        clear_policies()
    (result,) = probe_many(svc["pods"]["client"], svc["vip"], SVC_PORT, 1)
    assert result.outcome == "reachable", result
