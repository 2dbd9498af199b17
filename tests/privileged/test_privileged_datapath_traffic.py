"""Real traffic through the attached programs, and an agent restart that adopts the pins.

Topology (as the agent builds it, through ``datapath.linux.netdev``): a "node"
namespace ``axt-dp-node-…`` with one ``lxc…`` veth per pod, pods
``axt-dp-a-…`` (10.200.0.1) and ``axt-dp-b-…`` (10.200.0.2) routed through
it. The programs are attached to the host veths from a thread inside the node
namespace, as the agent does; TCP connections are opened with plain sockets
created inside the pods. Everything (filters, pins, namespaces) is removed
at the end.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from axoneme.datapath.linux import netdev
from axoneme.datapath.linux.loader import Datapath
from axoneme.datapath.linux.maps import (
    INGRESS,
    IPCacheValue,
    LxcInfo,
    PolicyKey,
    lxc_flags,
)
from axoneme.datapath.portsets import port_entries
from axoneme.kit.netns import entered, socket_in
from axoneme.policy.types import PortVerdicts
from privileged.test_privileged_datapath_progrun import require_datapath

pytestmark = pytest.mark.privileged

A_IP, B_IP, ROUTER = "10.200.0.1", "10.200.0.2", "169.254.1.1"
A_ID, B_ID, A_EP, B_EP = 1001, 1002, 1, 2
OPEN_PORT, CLOSED_PORT = 8080, 8081
TCP = 6


@dataclass
class Topology:
    tag: str
    node: str  # /run/netns/... paths
    pod_a: str
    pod_b: str
    lxc_a: int  # host veth ifindexes, in the node namespace
    lxc_b: int
    pin_dir: Path


def _ns(name: str) -> str:
    return f"/run/netns/{name}"


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    require_datapath()
    tag = uuid.uuid4().hex[:6]
    names = [f"axt-dp-node-{tag}", f"axt-dp-a-{tag}", f"axt-dp-b-{tag}"]
    pin_dir = Path(f"/sys/fs/bpf/axt-dp-traffic-{tag}")
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        node, pod_a, pod_b = (_ns(n) for n in names)
        with entered(node):
            for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
                netdev.write_sysctl(key, "0")
            netdev.write_sysctl("net.ipv4.ip_forward", "1")
            links = [
                netdev.create_endpoint_link(
                    netns=pod,
                    ifname="eth0",
                    host_ifname=f"lxc{side}{tag}",
                    address=ip,
                    router_ip=ROUTER,
                )
                for side, pod, ip in (("a", pod_a, A_IP), ("b", pod_b, B_IP))
            ]
        yield Topology(tag, node, pod_a, pod_b, links[0].host_ifindex, links[1].host_ifindex,
                       pin_dir)  # fmt: skip
    finally:
        Datapath.remove(pin_dir)
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


class Server:
    """An echo server in pod B on OPEN_PORT and CLOSED_PORT (policy decides, not the port)."""

    def __init__(self, netns: str) -> None:
        self.socks = []
        for port in (OPEN_PORT, CLOSED_PORT):
            s = socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(True)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((B_IP, port))
            s.listen(16)
            s.settimeout(0.2)
            self.socks.append(s)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._serve, args=(s,), daemon=True)
                        for s in self.socks]  # fmt: skip
        for t in self.threads:
            t.start()

    def _serve(self, listener: socket.socket) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn:
            while not self.stop.is_set():
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        for s in self.socks:
            s.close()


@pytest.fixture(scope="module")
def server(topo: Topology) -> Iterator[Server]:
    srv = Server(topo.pod_b)
    yield srv
    srv.close()


def connect(topo: Topology, port: int, timeout: float = 1.0) -> socket.socket | None:
    """A connected client socket from pod A, or None if the SYN went unanswered."""
    s = socket_in(topo.pod_a, socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(True)
    s.settimeout(timeout)
    try:
        s.connect((B_IP, port))
    except TimeoutError:
        s.close()
        return None
    return s


def echo(s: socket.socket, payload: bytes = b"ping") -> bytes:
    s.sendall(payload)
    return s.recv(4096)


def can_connect(topo: Topology, port: int) -> bool:
    s = connect(topo, port)
    if s is None:
        return False
    with s:
        return echo(s) == b"ping"


def program_endpoints(dp: Datapath, topo: Topology, b_flags: int) -> None:
    dp.lxc.set(topo.lxc_a, LxcInfo(A_EP, A_ID, A_IP, 0))
    dp.lxc.set(topo.lxc_b, LxcInfo(B_EP, B_ID, B_IP, b_flags))
    dp.ipcache.set(f"{A_IP}/32", IPCacheValue(A_ID))
    dp.ipcache.set(f"{B_IP}/32", IPCacheValue(B_ID))


def allow_open_port(dp: Datapath) -> None:
    dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), 10)
    line = TCP << 16 | OPEN_PORT
    dp.ports.write_set(10, port_entries(PortVerdicts(allow=((line, line),))))


def snapshot(dp: Datapath) -> tuple[object, ...]:
    return (dp.lxc.items(), dp.ipcache.items(), dp.policy.items(), dp.policy_cidr.items(),
            dp.ports.items())  # fmt: skip


def test_policy_enforced_on_real_traffic_and_survives_restart(
    topo: Topology, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    dp = Datapath.open(topo.pin_dir)
    load_ms = dp.load_seconds * 1e3
    try:
        program_endpoints(dp, topo, b_flags=0)
        started = time.perf_counter()
        with entered(topo.node):  # the agent's thread lives in the node namespace
            dp.attach(topo.lxc_a)
            dp.attach(topo.lxc_b)
        attach_ms = (time.perf_counter() - started) * 1e3 / 2
        with entered(topo.node):
            ids = {dp.program_id(n) for n in ("from_container", "to_container")}
            assert set(dp.attached(topo.lxc_a).values()) == ids
            dp.attach(topo.lxc_b)  # idempotent: replaces in place
            assert set(dp.attached(topo.lxc_b).values()) == ids

        # Not enforced: everything connects, and conntrack sees both endpoints' sides.
        assert can_connect(topo, OPEN_PORT)
        dirs = {(k.dport, k.dir) for k, _ in dp.ct.items()}
        assert {(OPEN_PORT, 0), (OPEN_PORT, 1)} <= dirs
        # B's ingress enforced, nothing allowed: the SYN is dropped (and reported).
        with dp.events() as reader:
            reader.consume()
            program_endpoints(dp, topo, b_flags=lxc_flags(ingress_enforced=True))
            assert not can_connect(topo, OPEN_PORT)
            drops = [e for e in reader.consume() if e.type_name == "DROP"]
        assert drops and {(e.reason, e.daddr, e.dport, e.ifindex) for e in drops} == {
            (133, B_IP, OPEN_PORT, topo.lxc_b)
        }
        # Allow identity A on the open port only.
        allow_open_port(dp)
        assert can_connect(topo, OPEN_PORT)
        assert not can_connect(topo, CLOSED_PORT)

        # An established connection survives a switch to an explicit deny.
        live = connect(topo, OPEN_PORT)
        assert live is not None
        assert echo(live) == b"ping"
        dp.policy.set(PolicyKey(0, B_EP, INGRESS), 11)
        line = TCP << 16 | OPEN_PORT
        dp.ports.write_set(11, port_entries(PortVerdicts(deny=((line, line),))))
        assert echo(live, b"still here") == b"still here"
        assert not can_connect(topo, OPEN_PORT)
        dp.policy.delete(PolicyKey(0, B_EP, INGRESS))
        dp.ports.delete_set(11)
        before = snapshot(dp)
        program_ids = {n: dp.program_id(n) for n in ("from_container", "to_container")}
    finally:
        dp.close()  # the agent exits: fds gone, pins and filters stay

    # Nobody holds an fd now; enforcement goes on.
    assert can_connect(topo, OPEN_PORT)
    assert not can_connect(topo, CLOSED_PORT)
    assert echo(live, b"across the restart") == b"across the restart"

    # The next agent adopts the pins: nothing is loaded, nothing re-attached.
    dp = Datapath.open(topo.pin_dir)
    try:
        assert dp.reused and dp.load_seconds == 0
        assert {n: dp.program_id(n) for n in program_ids} == program_ids
        with entered(topo.node):
            assert dp.attached(topo.lxc_b) == program_ids
        assert snapshot(dp) == before
        assert can_connect(topo, OPEN_PORT)
        assert not can_connect(topo, CLOSED_PORT)

        # An upgrade: force_reload loads new programs over the same maps; attach moves to them.
        dp.close()
        dp = Datapath.open(topo.pin_dir, force_reload=True)
        assert not dp.reused
        new_ids = {n: dp.program_id(n) for n in program_ids}
        assert set(new_ids.values()).isdisjoint(program_ids.values())
        assert snapshot(dp) == before
        with entered(topo.node):
            assert dp.attached(topo.lxc_b) == program_ids  # untouched until re-attached
            for ifindex in (topo.lxc_a, topo.lxc_b):
                dp.attach(ifindex)
            assert dp.attached(topo.lxc_b) == new_ids
        assert echo(live, b"after upgrade") == b"after upgrade"
        assert can_connect(topo, OPEN_PORT)
        assert not can_connect(topo, CLOSED_PORT)
        live.close()

        started = time.perf_counter()
        with entered(topo.node):
            assert dp.detach(topo.lxc_a) and dp.detach(topo.lxc_b)
            detach_ms = (time.perf_counter() - started) * 1e3 / 2
            assert dp.attached(topo.lxc_b) == {"from_container": None, "to_container": None}
            assert not dp.detach(topo.lxc_b)
        assert can_connect(topo, CLOSED_PORT)  # nothing enforces any more
    finally:
        dp.close()
    with capsys.disabled():
        print(f"\nload {load_ms:.1f} ms, attach {attach_ms:.2f} ms/device (2 hooks), "
              f"detach {detach_ms:.2f} ms/device")  # fmt: skip
