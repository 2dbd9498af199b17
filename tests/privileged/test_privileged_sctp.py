"""SCTP over raw sockets: the workload answers INIT, the probe reads the answer.

The kernel has no SCTP stack, so these are the only SCTP endpoints there are.
Topology (all addresses exist only inside the namespaces created here)::

    axt-sctp-<pid>-a  10.250.8.1/24 --veth-- 10.250.8.2/24  axt-sctp-<pid>-b
      lo 10.250.9.1/32                                       lo 10.250.9.2/32
                                                             workload: 9000 SCTP, TCP, UDP

``a`` runs no SCTP endpoint (the kernel answers INIT there with ICMP protocol
unreachable). 10.250.8.99 has a permanent neighbour entry in ``a`` with a MAC
nobody owns: frames leave and vanish, a deterministic black hole.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from axoneme.probe import run
from axoneme.probe.run import ProbeError, ProbeTarget
from privileged.netnsenv import (
    ip,
    netns_names,
    remove_stale,
    require_netns,
    start_workload,
    stop,
    wait_ready,
)

pytestmark = pytest.mark.privileged

PID = os.getpid()
PREFIX = f"axt-sctp-{PID}-"
NS_A, NS_B = PREFIX + "a", PREFIX + "b"
VETH_A, VETH_B = f"axts{PID}a", f"axts{PID}b"  # within 15 characters
IP_A, IP_B = "10.250.8.1", "10.250.8.2"
LO_A, LO_B = "10.250.9.1", "10.250.9.2"  # second addresses, on lo
SILENT_IP, SILENT_MAC = "10.250.8.99", "02:00:00:00:00:98"
NO_ROUTE_IP = "10.251.8.1"
PORT, CLOSED = 9000, 9001
_STALE = re.compile(r"axt-sctp-(\d+)-[ab]")


def _start_workload(ns: str, *ports: str) -> subprocess.Popen[str]:
    proc = start_workload(ns, "sctp", *ports)
    wait_ready(proc)
    return proc


@dataclass(frozen=True)
class Net:
    ns_a: str
    ns_b: str


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    require_netns("CAP_SYS_ADMIN for setns, CAP_NET_ADMIN and CAP_NET_RAW")
    remove_stale(_STALE)
    created: list[str] = []
    server: subprocess.Popen[str] | None = None
    try:
        for ns in (NS_A, NS_B):
            ip("netns", "add", ns)
            created.append(ns)
        ip(*f"link add {VETH_A} netns {NS_A} type veth peer name {VETH_B} netns {NS_B}".split())
        for ns, dev, addr, lo in ((NS_A, VETH_A, IP_A, LO_A), (NS_B, VETH_B, IP_B, LO_B)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{lo}/32", "dev", "lo")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        ip("-n", NS_A, "route", "add", f"{LO_B}/32", "via", IP_B)
        ip("-n", NS_B, "route", "add", f"{LO_A}/32", "via", IP_A)
        ip("-n", NS_A, "neigh", "add", SILENT_IP, "lladdr", SILENT_MAC, "dev", VETH_A,
            "nud", "permanent")  # fmt: skip
        for ns in (NS_A, NS_B):  # protocol-unreachable replies must not be rate limited
            subprocess.run(
                ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"],
                check=True,
            )
        server = _start_workload(NS_B, f"{PORT}/SCTP", f"{PORT}/TCP", f"{PORT}/UDP")
        yield Net(NS_A, NS_B)
    finally:
        server_err = stop(server)[1] if server is not None else ""
        for ns in created:
            ip("netns", "del", ns, check=False)
        ip("link", "del", VETH_A, check=False)
        leftover = [name for name in netns_names() if name.startswith(PREFIX)]
        assert not leftover, f"namespaces left behind: {leftover}"
        assert "Traceback" not in server_err, server_err


def _probe(
    ns: str, ip: str, port: int, timeout: float = 2.0, src_ip: str | None = None
) -> run.ProbeResult:
    return asyncio.run(run.probe(ProbeTarget(ns, ip, port, "SCTP", src_ip), timeout))


def test_init_ack_is_reachable_with_rtt(net: Net) -> None:
    result = _probe(net.ns_a, IP_B, PORT)
    assert (result.outcome, result.detail) == ("reachable", "INIT ACK")
    assert result.rtt_ms is not None and 0 < result.rtt_ms < 1000


def test_closed_port_is_refused_by_abort(net: Net) -> None:
    result = _probe(net.ns_a, IP_B, CLOSED)
    assert (result.outcome, result.detail) == ("refused", "ABORT")
    assert result.rtt_ms is not None


def test_blackholed_address_times_out(net: Net) -> None:
    start = time.perf_counter()
    result = _probe(net.ns_a, SILENT_IP, PORT, timeout=1.5)
    assert result.outcome == "timeout" and result.rtt_ms is None
    assert result.detail == "no INIT ACK within 1.5s"
    assert 1.5 <= time.perf_counter() - start < 3.0


def test_no_route_is_refused(net: Net) -> None:
    result = _probe(net.ns_a, NO_ROUTE_IP, PORT)
    assert result.outcome == "refused" and "ENETUNREACH" in result.detail


def test_host_without_sctp_answers_protocol_unreachable(net: Net) -> None:
    # Nothing in ``a`` holds a raw SCTP socket: its kernel sends ICMP protocol unreachable.
    result = _probe(net.ns_b, IP_A, PORT)
    assert result.outcome == "refused" and "ENOPROTOOPT" in result.detail


def test_reply_comes_from_the_address_probed_and_to_the_bound_source(net: Net) -> None:
    # The workload answers from LO_B (not its veth address), to LO_A, the probe's bound source.
    assert _probe(net.ns_a, LO_B, PORT, src_ip=LO_A).outcome == "reachable"
    assert _probe(net.ns_a, LO_B, CLOSED, src_ip=LO_A).outcome == "refused"
    for proto in ("TCP", "UDP"):  # the UDP echo, too, answers from the address probed
        target = ProbeTarget(net.ns_a, LO_B, PORT, proto, LO_A)
        assert asyncio.run(run.probe(target, 2.0)).outcome == "reachable", proto


def test_probe_from_the_workloads_own_namespace(net: Net) -> None:
    assert _probe(net.ns_b, IP_B, PORT).outcome == "reachable"
    assert _probe(net.ns_b, "127.0.0.1", CLOSED).outcome == "refused"


def test_unbindable_source_is_a_probe_error(net: Net) -> None:
    with pytest.raises(ProbeError, match=r"cannot bind 203\.0\.113\.77"):
        _probe(net.ns_a, IP_B, PORT, src_ip="203.0.113.77")


def test_100_concurrent_probes_each_get_their_own_answer(net: Net) -> None:
    plan: list[tuple[int, str, int, run.Outcome]] = [
        (60, IP_B, PORT, "reachable"),
        (20, IP_B, CLOSED, "refused"),
        (10, LO_B, PORT, "reachable"),
        (10, SILENT_IP, PORT, "timeout"),
    ]
    cases = [
        (ProbeTarget(net.ns_a, ip, port, "SCTP"), want)
        for count, ip, port, want in plan
        for _ in range(count)
    ]
    cases = cases[0::2] + cases[1::2]  # interleave reachable, refused and silent
    start = time.perf_counter()
    results = asyncio.run(run.probe_many([target for target, _ in cases], timeout=1.5))
    elapsed = time.perf_counter() - start
    assert len(results) == 100
    wrong = [
        (target, result)
        for (target, want), result in zip(cases, results, strict=True)
        if result.outcome != want
    ]
    assert not wrong, wrong[:5]
    assert elapsed < 5.0, f"100 SCTP probes took {elapsed:.1f}s"
