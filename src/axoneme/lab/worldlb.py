"""The world's router health-checks nodes for LoadBalancer services with
``externalTrafficPolicy: Local``, as a cloud load balancer does.

``axn-world`` reaches the whole LoadBalancer pool over one multipath route via
every node (:func:`axoneme.lab.netsetup.create_world`). Under eTP Local only
nodes with a backend of the service serve it, and the others refuse, so this
task, run by the supervisor, does what a cloud load balancer does with
``spec.healthCheckNodePort``: every ``INTERVAL`` seconds it asks each node
``GET http://<node IP>:<port>/`` from a socket in ``axn-world`` (the same path
the traffic takes), and keeps per node the kube-proxy answer 200 as healthy;
503, refused and timed out are not. A node flips after ``THRESHOLD``
consecutive results against its current state; its first result counts at once.

:func:`desired_routes` (pure) turns that into ``ingress IP -> healthy nodes'
IPs``; :func:`apply_routes` makes the world's ``/32`` routes so with
``route replace`` (multipath over the healthy nodes) and deletes the ones no
longer wanted. An ingress address without a healthy node gets no ``/32``: its
flows take the pool route and are refused at once, as before. Routes carry
protocol ``RTPROT_WORLDLB``, so only this module's are ever changed (and a
restarted supervisor finds and clears stale ones); they exist only in
``axn-world`` and only for addresses inside ``LB_IP_POOL``. eTP Cluster
services keep the pool route. ``world-lb.json`` in the lab directory says
what was decided (:func:`status_lines` for ``axoneme lab status``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import NetlinkError

from axoneme.datapath.linux.netdev import netlink_in
from axoneme.k8s.errors import ValidationError
from axoneme.k8s.service import Service, parse_service
from axoneme.kit.files import atomic_write_text, read_json_object
from axoneme.kit.netns import socket_in
from axoneme.lab.topology import LAB_DIR, LB_IP_POOL, WORLD_NETNS
from axoneme.store.informer import run_informer
from axoneme.store.types import Key, Resource, Store, WatchEvent

__all__ = [
    "RTPROT_WORLDLB",
    "NodeHealth",
    "Target",
    "WorldLoadBalancer",
    "apply_routes",
    "desired_routes",
    "read_state",
    "status_lines",
    "targets",
]

log = logging.getLogger("axoneme.lab.worldlb")

INTERVAL = 1.0  # seconds between rounds of checks
TIMEOUT = 0.5  # seconds a node has to answer one check
THRESHOLD = 2  # consecutive results against the current state that flip it
# rtnetlink route protocol marking this module's routes (unassigned in
# rt_protos; the kernel's own stop at 4, routing daemons use 8..192).
RTPROT_WORLDLB = 201
WORLD_NETNS_PATH = f"/run/netns/{WORLD_NETNS}"


def state_file() -> Path:
    return LAB_DIR / "world-lb.json"


@dataclass(frozen=True)
class Target:
    """One health-checked service: its check port and its ingress addresses in the pool."""

    service: str  # namespace/name
    port: int
    ingress: tuple[str, ...]


def targets(services: Iterable[Service], pool: str = LB_IP_POOL) -> list[Target]:
    """The services the router health-checks: LoadBalancer, eTP Local, with a
    ``healthCheckNodePort`` and ingress addresses inside ``pool`` (others are
    never routed by the world specially)."""
    net = ipaddress.ip_network(pool)
    out = []
    for svc in services:
        if not (svc.needs_health_check_node_port and svc.health_check_node_port):
            continue
        ingress = tuple(ip for ip in svc.load_balancer_ingress if ipaddress.ip_address(ip) in net)
        if ingress:
            out.append(Target(svc.ref, svc.health_check_node_port, ingress))
    return sorted(out, key=lambda t: t.service)


def desired_routes(
    wanted: Iterable[Target],
    healthy: Mapping[tuple[str, int, str], bool],
    nodes: Mapping[str, str],
    pool: str = LB_IP_POOL,
) -> dict[str, tuple[str, ...]]:
    """``ingress IP -> sorted IPs of the nodes healthy for its service`` (pure).

    ``healthy`` is keyed by (service, port, node name); a node never checked is
    not healthy. An address with no healthy node is left out (the pool route
    carries it). An address two services claim (which the lab's IPAM never
    gives) takes the union. Addresses outside ``pool`` are never returned.
    """
    net = ipaddress.ip_network(pool)
    out: dict[str, set[str]] = {}
    for target in wanted:
        up = {ip for name, ip in nodes.items() if healthy.get((target.service, target.port, name))}
        for address in target.ingress:
            if up and ipaddress.ip_address(address) in net:
                out.setdefault(address, set()).update(up)
    return {address: tuple(sorted(ips)) for address, ips in sorted(out.items())}


class NodeHealth:
    """One node's state for one check: the first result decides, then ``threshold``
    consecutive contrary results flip it (a real load balancer's healthy and
    unhealthy thresholds)."""

    def __init__(self, threshold: int = THRESHOLD) -> None:
        self.threshold = threshold
        self.healthy: bool | None = None
        self._against = 0

    def observe(self, ok: bool) -> bool:
        if self.healthy is None or ok == self.healthy:
            self.healthy, self._against = ok, 0
        else:
            self._against += 1
            if self._against >= self.threshold:
                self.healthy, self._against = ok, 0
        return self.healthy


async def check(node_ip: str, port: int, timeout: float = TIMEOUT) -> bool:
    """One health check from the world: True when the node answers HTTP 200."""
    loop = asyncio.get_running_loop()
    sock = socket_in(WORLD_NETNS_PATH, socket.AF_INET, socket.SOCK_STREAM)
    # Reset on close: a check per node and second leaves no TIME_WAIT behind.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request = f"GET / HTTP/1.1\r\nHost: {node_ip}:{port}\r\nConnection: close\r\n\r\n"

    async def exchange() -> bytes:
        await loop.sock_connect(sock, (node_ip, port))
        await loop.sock_sendall(sock, request.encode())
        data = b""
        while b"\r\n" not in data:
            chunk = await loop.sock_recv(sock, 1024)
            if not chunk:
                break
            data += chunk
        return data

    try:
        status_line = (await asyncio.wait_for(exchange(), timeout)).split(b"\r\n", 1)[0]
    except (OSError, TimeoutError):
        return False
    finally:
        sock.close()
    parts = status_line.split()
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1] == b"200"


def _gateways(route: Any) -> tuple[str, ...]:
    hops = route.get_attr("RTA_MULTIPATH")
    if hops:
        return tuple(sorted(str(h.get_attr("RTA_GATEWAY")) for h in hops))
    gateway = route.get_attr("RTA_GATEWAY")
    return (str(gateway),) if gateway else ()


def read_routes(netns: str = WORLD_NETNS_PATH) -> dict[str, tuple[str, ...]]:
    """This module's ``/32`` routes in the world: ``address -> gateways``."""
    with netlink_in(netns) as ipr:
        routes = ipr.get_routes(family=socket.AF_INET, table=254, proto=RTPROT_WORLDLB)
        return {
            str(r.get_attr("RTA_DST")): _gateways(r)
            for r in routes
            if r["proto"] == RTPROT_WORLDLB and r["dst_len"] == 32
        }


def apply_routes(
    want: Mapping[str, tuple[str, ...]], netns: str = WORLD_NETNS_PATH, pool: str = LB_IP_POOL
) -> dict[str, tuple[str, ...]]:
    """Make the world's routes of protocol ``RTPROT_WORLDLB`` exactly ``want``
    (only what differs is written); return what is there now."""
    net = ipaddress.ip_network(pool)
    for address in want:  # network safety: nothing outside the lab's pool, ever
        if ipaddress.ip_address(address) not in net:
            raise ValueError(f"world LB: {address} is outside {pool}")
    have = read_routes(netns)
    with netlink_in(netns) as ipr:
        for address, gateways in want.items():
            if have.get(address) == tuple(sorted(gateways)) or not gateways:
                continue
            hops: dict[str, Any] = (
                {"gateway": gateways[0]}
                if len(gateways) == 1
                else {"multipath": [{"gateway": g} for g in gateways]}
            )
            ipr.route("replace", dst=f"{address}/32", proto=RTPROT_WORLDLB, **hops)
        for address in have.keys() - want.keys():
            with contextlib.suppress(NetlinkError):  # gone already: the goal is reached
                ipr.route("del", dst=f"{address}/32", proto=RTPROT_WORLDLB)
    return read_routes(netns)


class WorldLoadBalancer:
    """The supervisor's task: Services from the store's informer, checks every
    ``interval``, the world's routes and ``world-lb.json`` after each round."""

    def __init__(
        self,
        store: Store,
        nodes: Mapping[str, str],
        interval: float = INTERVAL,
        netns: str = WORLD_NETNS_PATH,
    ) -> None:
        self._store = store
        self.nodes = dict(nodes)  # node name -> InternalIP (fixed for a lab's life)
        self.interval = interval
        self._netns = netns
        self._services: dict[str, Resource] = {}
        self._health: dict[tuple[str, int, str], NodeHealth] = {}
        self.routes: dict[str, tuple[str, ...]] = {}

    async def _on_sync(self, items: list[Resource]) -> None:
        self._services = {str(Key.of(o)): o for o in items}

    async def _on_event(self, event: WatchEvent) -> None:
        key = str(Key.of(event.object))
        if event.type == "DELETED":
            self._services.pop(key, None)
        else:
            self._services[key] = event.object

    def services(self) -> list[Service]:
        out = []
        for raw in self._services.values():
            with contextlib.suppress(ValidationError):  # validated at apply
                out.append(parse_service(raw))
        return out

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                run_informer(self._store, "Service", self._on_sync, self._on_event),
                name="world-lb-informer",
            )
            tg.create_task(self._loop(), name="world-lb-checks")

    async def _loop(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:  # a bug here must not take the whole lab down
                log.exception("world LB round failed; retrying")
            await asyncio.sleep(self.interval)

    async def round(self) -> None:
        """One round: check every (service, node), then routes and state."""
        wanted = targets(self.services())
        keys = [(t.service, t.port, n) for t in wanted for n in self.nodes]
        results = await asyncio.gather(*(check(self.nodes[n], port) for _, port, n in keys))
        for key in self._health.keys() - set(keys):  # service gone or its port changed
            del self._health[key]
        healthy = {}
        for key, ok in zip(keys, results, strict=True):
            healthy[key] = self._health.setdefault(key, NodeHealth()).observe(ok)
        want = desired_routes(wanted, healthy, self.nodes)
        self.routes = await asyncio.to_thread(apply_routes, want, self._netns)
        self._write_state(wanted, healthy)

    def _write_state(
        self, wanted: list[Target], healthy: Mapping[tuple[str, int, str], bool]
    ) -> None:
        by_ip = {ip: name for name, ip in self.nodes.items()}
        state = {
            "interval": self.interval,
            "services": [
                {
                    "service": t.service,
                    "healthCheckNodePort": t.port,
                    "ingress": list(t.ingress),
                    "healthy": {n: healthy.get((t.service, t.port, n), False) for n in self.nodes},
                }
                for t in wanted
            ],
            "routes": {
                address: [by_ip.get(g, g) for g in gateways]
                for address, gateways in self.routes.items()
            },
        }
        atomic_write_text(state_file(), json.dumps(state, indent=1), mode=0o644)


def read_state() -> dict[str, Any] | None:
    return read_json_object(state_file())


def status_lines() -> list[str]:
    """Lines for ``axoneme lab status``: each health-checked address and its next hops."""
    state = read_state()
    if state is None:
        return ["world LB: not running"]
    if not state["services"]:
        return ["world LB: no LoadBalancer service with externalTrafficPolicy Local"]
    lines = []
    for svc in state["services"]:
        for address in svc["ingress"]:
            hops = state["routes"].get(address)
            via = ", ".join(hops) if hops else "pool route, no healthy node"
            lines.append(
                f"world LB: {address} -> {via} "
                f"({svc['service']}, health check {svc['healthCheckNodePort']})"
            )
    return lines
