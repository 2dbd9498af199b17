"""Probes, netns switching and the pod workload against two real network namespaces.

Topology (all addresses exist only inside the namespaces created here)::

    axt-probe-<pid>-a  10.250.0.1/24 --veth-- 10.250.0.2/24  axt-probe-<pid>-b
                                                             workload: 8080/TCP, 5353/UDP

10.250.0.99 has a permanent neighbour entry in ``a`` with a MAC nobody owns, so
frames leave the veth and are silently dropped by ``b`` (no ARP failure, no
ICMP): a deterministic black hole for the timeout cases.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pytest

from axoneme.kit import netns
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

Proto = Literal["TCP", "UDP"]

PID = os.getpid()
PREFIX = f"axt-probe-{PID}-"
NS_A, NS_B = PREFIX + "a", PREFIX + "b"
VETH_A, VETH_B = f"axtp{PID}a", f"axtp{PID}b"  # interface names stay within 15 chars
IP_A, IP_B = "10.250.0.1", "10.250.0.2"
SILENT_IP, SILENT_MAC = "10.250.0.99", "02:00:00:00:00:99"
NO_ROUTE_IP = "10.251.0.1"
TCP_PORT, UDP_PORT = 8080, 5353
CLOSED_TCP, CLOSED_UDP = 8081, 5354
_STALE = re.compile(r"axt-probe-(\d+)-[ab]")


@dataclass(frozen=True)
class Lab:
    """The namespaces and the workload serving in ``ns_b``."""

    ns_a: str
    ns_b: str
    server: subprocess.Popen[str]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_netns("CAP_SYS_ADMIN for setns, CAP_NET_ADMIN for veth")
    remove_stale(_STALE)
    created: list[str] = []
    server: subprocess.Popen[str] | None = None
    server_err = ""
    try:
        for ns in (NS_A, NS_B):
            ip("netns", "add", ns)
            created.append(ns)
        ip(*f"link add {VETH_A} netns {NS_A} type veth peer name {VETH_B} netns {NS_B}".split())
        for ns, dev, addr in ((NS_A, VETH_A, IP_A), (NS_B, VETH_B, IP_B)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        fake_neighbour = f"{SILENT_IP} lladdr {SILENT_MAC} dev {VETH_A} nud permanent"
        ip("-n", NS_A, "neigh", "add", *fake_neighbour.split())
        # Port-unreachable replies must not be rate limited during the bulk probe.
        subprocess.run(
            ["ip", "netns", "exec", NS_B, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"],
            check=True,
        )
        server = start_workload(NS_B, "web", f"{TCP_PORT}/TCP", f"{UDP_PORT}/UDP")
        wait_ready(server)
        yield Lab(NS_A, NS_B, server)
    finally:
        if server is not None:
            _, server_err = stop(server)
        for ns in created:
            ip("netns", "del", ns, check=False)  # takes the veth pair with it
        ip("link", "del", VETH_A, check=False)  # in case it ever landed in our netns
        leftover = [name for name in netns_names() if name.startswith(PREFIX)]
        assert not leftover, f"namespaces left behind: {leftover}"
        # asyncio logs callback crashes instead of raising; they must not go unseen.
        assert "Traceback" not in server_err, server_err


def _thread_netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def _probe(lab: Lab, ip: str, port: int, proto: Proto, timeout: float = 2.0) -> run.ProbeResult:
    target = ProbeTarget(lab.ns_a, ip, port, proto)
    return asyncio.run(run.probe(target, timeout))


# --- kit.netns --------------------------------------------------------------------------


def test_netns_path() -> None:
    assert netns.netns_path("demo") == "/run/netns/demo"
    assert netns.netns_path("/proc/42/ns/net") == "/proc/42/ns/net"
    with pytest.raises(ValueError):
        netns.netns_path("")


def test_entered_switches_thread_and_always_returns(lab: Lab) -> None:
    home = _thread_netns()
    with netns.entered(lab.ns_a):
        assert _thread_netns() == os.stat(netns.netns_path(lab.ns_a)).st_ino
    assert _thread_netns() == home
    with pytest.raises(RuntimeError, match="boom"), netns.entered(lab.ns_b):
        raise RuntimeError("boom")
    assert _thread_netns() == home


def test_entered_missing_namespace(lab: Lab) -> None:
    home = _thread_netns()
    with pytest.raises(netns.NetnsError) as caught, netns.entered(PREFIX + "missing"):
        pass
    assert caught.value.errno == errno.ENOENT
    assert _thread_netns() == home


def test_socket_in_lives_in_target_netns(lab: Lab) -> None:
    home = _thread_netns()
    with netns.socket_in(lab.ns_a, socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert not sock.getblocking()
        sock.bind((IP_A, 0))  # IP_A exists only inside ns a
    assert _thread_netns() == home
    with pytest.raises(netns.NetnsError):
        netns.socket_in(PREFIX + "missing", socket.AF_INET, socket.SOCK_STREAM)


# --- workload ---------------------------------------------------------------------------


def _connect(lab: Lab) -> socket.socket:
    sock = netns.socket_in(lab.ns_a, socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect((IP_B, TCP_PORT))
    return sock


def _read_response(sock: socket.socket) -> dict[str, object]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    length = int(next(h for h in lines if h.startswith("Content-Length:")).split(":")[1])
    while len(body) < length:
        body += sock.recv(4096)
    document = json.loads(body)
    assert isinstance(document, dict)
    return document


def test_http_get_names_pod_and_client_with_keep_alive(lab: Lab) -> None:
    with _connect(lab) as sock:
        client = "{}:{}".format(*sock.getsockname())
        sock.sendall(b"GET /one HTTP/1.1\r\nHost: web\r\n\r\n")
        first = _read_response(sock)
        sock.sendall(b"GET /two HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        second = _read_response(sock)
        assert sock.recv(1) == b""  # Connection: close honoured
    assert first["pod"] == "demo/web"
    assert first["node"] == "n1"
    assert first["client"] == client
    assert client.startswith(IP_A + ":")
    assert (first["method"], first["path"]) == ("GET", "/one")
    assert second["path"] == "/two"
    assert second["headers"] == {"Host": "web", "Connection": "close"}


def test_tcp_echo_for_non_http(lab: Lab) -> None:
    with _connect(lab) as sock:
        sock.sendall(b"hello, echo\n")
        received = b""
        while len(received) < 12:
            received += sock.recv(4096)
        assert received == b"hello, echo\n"


def test_workload_exits_0_on_sigterm_and_sigint(lab: Lab) -> None:
    for sig, port in ((signal.SIGTERM, 9090), (signal.SIGINT, 9091)):
        proc = start_workload(lab.ns_b, "web", f"{port}/TCP", f"{port}/UDP")
        try:
            wait_ready(proc)
        finally:
            code, err = stop(proc, sig)
        assert (code, err) == (0, ""), f"after {signal.Signals(sig).name}"


# --- probes -----------------------------------------------------------------------------


def test_tcp_reachable_with_rtt(lab: Lab) -> None:
    result = _probe(lab, IP_B, TCP_PORT, "TCP")
    assert result.outcome == "reachable"
    assert result.rtt_ms is not None
    assert 0 < result.rtt_ms < 1000


def test_tcp_closed_port_refused(lab: Lab) -> None:
    result = _probe(lab, IP_B, CLOSED_TCP, "TCP")
    assert result.outcome == "refused"
    assert "ECONNREFUSED" in result.detail


def test_udp_echo_reachable(lab: Lab) -> None:
    result = _probe(lab, IP_B, UDP_PORT, "UDP")
    assert result.outcome == "reachable"
    assert result.rtt_ms is not None


def test_udp_closed_port_refused(lab: Lab) -> None:
    result = _probe(lab, IP_B, CLOSED_UDP, "UDP")
    assert result.outcome == "refused"
    assert "ECONNREFUSED" in result.detail


@pytest.mark.parametrize("proto", ["TCP", "UDP"])
def test_no_route_refused(lab: Lab, proto: Proto) -> None:
    result = _probe(lab, NO_ROUTE_IP, 80, proto)
    assert result.outcome == "refused"
    assert "ENETUNREACH" in result.detail


@pytest.mark.parametrize("proto", ["TCP", "UDP"])
def test_silent_destination_times_out(lab: Lab, proto: Proto) -> None:
    start = time.perf_counter()
    result = _probe(lab, SILENT_IP, 80, proto, timeout=0.3)
    assert result.outcome == "timeout"
    assert result.rtt_ms is None
    assert 0.3 <= time.perf_counter() - start < 2.0


def test_missing_source_netns_raises(lab: Lab) -> None:
    target = ProbeTarget(PREFIX + "missing", IP_B, TCP_PORT, "TCP")
    with pytest.raises(ProbeError, match="missing"):
        asyncio.run(run.probe_many([target], 1.0))


def test_300_probes_run_concurrently_in_order(lab: Lab) -> None:
    plan: list[tuple[int, str, int, Proto, run.Outcome]] = [
        (140, IP_B, TCP_PORT, "TCP", "reachable"),
        (40, IP_B, CLOSED_TCP, "TCP", "refused"),
        (70, IP_B, UDP_PORT, "UDP", "reachable"),
        (20, IP_B, CLOSED_UDP, "UDP", "refused"),
        (15, SILENT_IP, 80, "TCP", "timeout"),
        (15, SILENT_IP, 53, "UDP", "timeout"),
    ]
    cases = [
        (ProbeTarget(lab.ns_a, ip, port, proto), want)
        for count, ip, port, proto, want in plan
        for _ in range(count)
    ]
    # Interleave so order preservation is actually exercised.
    cases = cases[0::2] + cases[1::2]
    targets = [target for target, _ in cases]
    start = time.perf_counter()
    results = asyncio.run(run.probe_many(targets, timeout=2.0))
    elapsed = time.perf_counter() - start
    assert len(results) == 300
    wrong = [
        (target, result)
        for (target, want), result in zip(cases, results, strict=True)
        if result.outcome != want
    ]
    assert not wrong, wrong[:5]
    # Serial waiting would take >= 30 x 2 s for the silent ones alone.
    assert elapsed < 10.0, f"300 probes took {elapsed:.1f}s"
