"""The agent's service component: Services and EndpointSlices into the socket LB maps.

Watches both kinds, and after each burst of changes (coalesced for
``SETTLE`` seconds, so a thousand applied services are one batched write)
recomputes the frontends of the services whose Service or EndpointSlices
changed (:mod:`axoneme.loadbalancer.table`) and lets
:class:`axoneme.datapath.linux.lbwriter.LBWriter` write only theirs; a
(re)list of either kind, or a failed write, recomputes and compares everything.
The programs are loaded (or adopted) and attached to the node's cgroup at
start; they stay attached when the agent dies, so services keep working
while it is away, and the next agent resumes from what the maps hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from axoneme.agent import healthcheck_nodeport
from axoneme.datapath.linux import hostlb, socklb, xdplb
from axoneme.datapath.linux.lbmaps import PROTO_NUMBERS
from axoneme.datapath.linux.lbwriter import LBWriter
from axoneme.k8s.errors import ValidationError
from axoneme.k8s.objects import parse_node
from axoneme.k8s.service import EndpointSlice, Service, parse_endpointslice, parse_service
from axoneme.loadbalancer.config import LBAgentConfig
from axoneme.loadbalancer.state import Frontend, LBConfig
from axoneme.loadbalancer.table import FrontendTable, slice_service
from axoneme.observer.agent import register_service_lookup
from axoneme.store.informer import run_informer
from axoneme.store.types import Key, Resource, StoreError, WatchEvent

if TYPE_CHECKING:
    from axoneme.agent.daemon import AgentContext

log = logging.getLogger("axoneme.agent.loadbalancer")

SETTLE = 0.05  # seconds of quiet before a sync: batches bursts of changes


class ServiceSync:
    """The latest Services and EndpointSlices, which services changed since the
    last write, and a flag saying something did."""

    def __init__(self) -> None:
        self.services: dict[Key, Service] = {}
        self.slices: dict[Key, EndpointSlice] = {}
        self.slices_of: dict[str, dict[Key, EndpointSlice]] = {}  # by service namespace/name
        self.changed = asyncio.Event()
        # The health-check node port listeners' own signal (agent/healthcheck_nodeport.py).
        self.health_changed = asyncio.Event()
        self.synced: set[str] = set()
        self.dirty: set[str] = set()  # services (namespace/name) to recompute
        self.relisted = True  # a kind was listed anew: recompute every service

    def service(self, ref: str) -> Service | None:
        namespace, _, name = ref.partition("/")
        return self.services.get(Key("Service", namespace, name))

    def _index(self, key: Key, old: EndpointSlice | None, new: EndpointSlice | None) -> None:
        if old is not None:
            ref = slice_service(old)
            self.dirty.add(ref)
            self.slices_of.get(ref, {}).pop(key, None)
        if new is not None:
            ref = slice_service(new)
            self.dirty.add(ref)
            self.slices_of.setdefault(ref, {})[key] = new

    def handlers(self, kind: str) -> tuple[Any, Any]:
        parse = parse_service if kind == "Service" else parse_endpointslice
        into: dict[Key, Any] = self.services if kind == "Service" else self.slices

        def parsed(raw: Resource) -> Any:
            try:
                return parse(raw)
            except ValidationError as exc:  # validated at apply; a stray one is skipped
                log.warning("%s: %s", Key.of(raw), exc)
                return None

        async def on_sync(items: list[Resource]) -> None:
            into.clear()
            for raw in items:
                value = parsed(raw)
                if value is not None:
                    into[Key.of(raw)] = value
            if kind == "EndpointSlice":
                self.slices_of = {}
                for key, s in self.slices.items():
                    self.slices_of.setdefault(slice_service(s), {})[key] = s
            self.synced.add(kind)
            self.relisted = True
            self.changed.set()
            self.health_changed.set()

        async def on_event(event: WatchEvent) -> None:
            key = Key.of(event.object)
            value = None if event.type == "DELETED" else parsed(event.object)
            old = into.pop(key, None)
            if value is not None:
                into[key] = value
            if kind == "Service":
                self.dirty.add(f"{key.namespace}/{key.name}")
            else:
                self._index(key, old, value)
            self.changed.set()
            self.health_changed.set()

        return on_sync, on_event


async def _start_node_port(ctx: AgentContext) -> tuple[str, str]:
    """bpf_host.c on the device holding this node's address, and bpf_xdp.c when
    acceleration is native: (the address, or "" if off; "Native" or "Disabled")."""
    try:
        raw = await ctx.store.get(Key("Node", "", ctx.config.node))
        node_ip = parse_node(raw).internal_ip if raw else ""
        ifindex = await asyncio.to_thread(_ifindex_of, node_ip) if node_ip else 0
        if not ifindex:
            log.warning("NodePort off: no device holds this node's address %r", node_ip)
            return "", "Disabled"
        pin_dir = ctx.config.bpf_pin_dir
        await asyncio.to_thread(hostlb.load, pin_dir)
        await asyncio.to_thread(hostlb.set_node_ip, pin_dir, node_ip)
        lb = ctx.config.lb
        await asyncio.to_thread(
            hostlb.set_mode, pin_dir, lb.mode == "dsr", lb.no_backend_response == "drop"
        )
        await asyncio.to_thread(hostlb.attach, pin_dir, ifindex)
    except (OSError, StoreError, ValidationError) as exc:
        log.error("NodePort unavailable: %s", exc)
        return "", "Disabled"
    log.info("NodePort on ifindex %d (%s)", ifindex, node_ip)
    return node_ip, await _start_acceleration(ctx, ifindex)


async def _start_acceleration(ctx: AgentContext, ifindex: int) -> str:
    """XDP before tc when asked; otherwise remove ours if an earlier agent left it."""
    pin_dir = ctx.config.bpf_pin_dir
    try:
        if ctx.config.lb.acceleration != "native":
            if await asyncio.to_thread(xdplb.detach_ours, pin_dir, ifindex):
                log.info("XDP acceleration removed from ifindex %d", ifindex)
            return "Disabled"
        await asyncio.to_thread(xdplb.load, pin_dir)
        await asyncio.to_thread(xdplb.attach, pin_dir, ifindex)
    except OSError as exc:
        # tc still serves every flow: acceleration is an optimisation, not a function.
        log.error("XDP acceleration unavailable: %s", exc)
        return "Disabled"
    log.info("XDP acceleration (native) on ifindex %d", ifindex)
    return "Native"


def _ifindex_of(ip: str) -> int:
    """The index of the device holding ``ip`` in this network namespace (0: none)."""
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3].split("/")[0] == ip:
            return int(fields[0].rstrip(":"))
    return 0


def report(
    config: LBAgentConfig,
    writer: LBWriter | None,
    problem: str = "",
    node_port: str = "Disabled",
    xdp: str = "Disabled",
    health: healthcheck_nodeport.HealthCheckServer | None = None,
) -> dict[str, Any]:
    """What ``axoneme status`` shows under KubeProxyReplacement."""
    socket_lb = writer is not None
    return {
        "status": "True" if socket_lb else "False",
        "socketLB": "Enabled" if socket_lb else "Disabled",
        "socketLBProtocols": "TCP, UDP" if socket_lb else "",
        "cgroup": str(config.cgroup_root or ""),
        "nodePort": node_port,
        "dsr": "Enabled" if node_port == "Enabled" and config.mode == "dsr" else "Disabled",
        "noBackendResponse": config.no_backend_response if node_port == "Enabled" else "",
        "algorithm": config.algorithm,
        "maglevTableSize": config.maglev_table_size,
        "sessionAffinity": "Enabled" if socket_lb else "Disabled",
        "xdpAcceleration": xdp,
        "frontends": len(writer.current["axo_lb_svc"]) if writer else 0,
        "backends": len(writer.current["axo_lb_backend"]) if writer else 0,
        "healthCheckNodePort": "Enabled" if health is not None else "Disabled",
        "healthCheckNodePorts": health.report() if health is not None else [],
        "problem": problem,
    }


async def run(ctx: AgentContext) -> None:
    config = ctx.config.lb
    ctx.service.loadbalancer = lambda: report(config, None, "off")
    if not config.socket_lb:
        log.info("socket load balancing disabled (--bpf-lb-sock=false)")
        return
    if config.cgroup_root is None:
        log.info("socket load balancing off: no --cgroup-root to attach to")
        return
    pin_dir, cgroup_root = ctx.config.bpf_pin_dir, config.cgroup_root
    try:
        loaded = await asyncio.to_thread(socklb.load, pin_dir)
        await asyncio.to_thread(socklb.attach, pin_dir, cgroup_root)
        writer = await asyncio.to_thread(LBWriter.open, pin_dir)
    except (OSError, socklb.SockLBError) as exc:
        # Services are one subsystem: the node's pods keep their network and policy.
        log.error("socket load balancing unavailable: %s", exc)
        problem = str(exc)
        ctx.service.loadbalancer = lambda: report(config, None, problem)
        return
    log.info(
        "socket LB %s, attached to %s (%d services adopted)",
        "loaded" if loaded else "adopted",
        cgroup_root,
        len(writer.current["axo_lb_svc"]),
    )
    node_ip, xdp = "", "Disabled"
    if config.node_port:
        node_ip, xdp = await _start_node_port(ctx)
    node_port = "Enabled" if node_ip else "Disabled"
    # Health-check node ports tell an external load balancer which nodes serve a
    # Local service from outside: only worth answering when this node does.
    health = None
    if node_ip and config.health_check_node_port:
        health = healthcheck_nodeport.HealthCheckServer(proxy_healthy=lambda: writer.synced)
    ctx.service.loadbalancer = lambda: report(
        config, writer, node_port=node_port, xdp=xdp, health=health
    )
    state = ServiceSync()
    lb = LBConfig(ctx.config.node, config.algorithm, config.maglev_table_size, node_ip)  # type: ignore[arg-type]
    try:
        async with asyncio.TaskGroup() as tg:
            for kind in ("Service", "EndpointSlice"):
                on_sync, on_event = state.handlers(kind)
                tg.create_task(run_informer(ctx.store, kind, on_sync, on_event), name=f"lb-{kind}")
            tg.create_task(_sync_loop(state, writer, lb), name="lb-sync")
            if health is not None:
                tg.create_task(
                    healthcheck_nodeport.run(state, ctx.config.node, health),
                    name="lb-health-check-node-ports",
                )
    finally:
        writer.close()


def service_names(frontends: list[Frontend]) -> dict[tuple[str, int, int], str]:
    """(address, port, IP protocol) -> "namespace/name", for flows: a frontend's own
    address, and a backend's (what flows show after the socket LB), first service wins."""
    names: dict[tuple[str, int, int], str] = {}
    for fe in sorted(frontends, key=lambda f: f.service):
        proto = PROTO_NUMBERS[fe.protocol]
        names.setdefault((fe.ip, fe.port, proto), fe.service)
        for b in fe.backends:
            names.setdefault((b.ip, b.port, proto), fe.service)
    return names


class ServiceNames:
    """:func:`service_names`, rebuilt at the first lookup after a change rather
    than on the programming path (10,000 services: milliseconds each time).
    Lookups may come from the observer's thread: a version says when to rebuild."""

    def __init__(self, frontends: Callable[[], list[Frontend]]) -> None:
        self._frontends = frontends
        self._version = 0
        self._built: tuple[int, dict[tuple[str, int, int], str]] = (-1, {})

    def changed(self) -> None:
        self._version += 1

    def lookup(self, ip: str, port: int, proto: int) -> str:
        version = self._version
        built, names = self._built
        if built != version:
            names = service_names(self._frontends())
            self._built = (version, names)
        return names.get((ip, port, proto), "")


async def _sync_loop(state: ServiceSync, writer: LBWriter, lb: LBConfig) -> None:
    table = FrontendTable(lb)
    names = ServiceNames(table.frontends)
    # Hubble's destination_service (observer/agent.py) asks us for service names.
    register_service_lookup(names.lookup)
    while True:
        await state.changed.wait()
        # Let a burst settle, and never write a half view before both kinds listed.
        while True:
            state.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.changed.wait(), timeout=SETTLE)
            if not state.changed.is_set() and state.synced >= {"Service", "EndpointSlice"}:
                break
            if not state.changed.is_set():
                await state.changed.wait()
        started = time.perf_counter()
        dirty, state.dirty = state.dirty, set()
        try:
            if state.relisted or not writer.synced:
                state.relisted = False
                frontends = table.reset(state.services.values(), state.slices.values())
                names.changed()
                stats = await asyncio.to_thread(
                    writer.sync, frontends, lb.maglev_table_size, lb.node
                )
            else:
                changes: dict[Hashable, Frontend | None] = {}
                for ref in dirty:
                    slices = state.slices_of.get(ref, {}).values()
                    changes.update(table.set_service(ref, state.service(ref), slices))
                names.changed()
                stats = await asyncio.to_thread(writer.apply, changes)
        except OSError as exc:
            # The writer re-read the maps; the next round compares everything.
            log.error("writing the service maps failed: %s; retrying", exc)
            await asyncio.sleep(1.0)
            state.relisted = True
            state.changed.set()
            continue
        if stats.written or stats.deleted:
            log.info(
                "services synced: %d frontends, %d backends (%d written, %d deleted) in %.1f ms",
                stats.services,
                stats.backends,
                stats.written,
                stats.deleted,
                (time.perf_counter() - started) * 1e3,
            )
