"""Agent component: the node's health endpoint, its responders, and the health checker.

The health endpoint is a real endpoint (Cilium's cilium-health): a network
namespace wired by the endpoint manager like a pod, with reserved identity
``health`` (4), published as a CiliumEndpoint so every node's ipcache knows
its address. It is re-created at every agent start and removed on stop.
Both it and the node answer ICMP (the kernel) and HTTP on port 4240.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from axoneme.endpoint.manager import PodInfo
from axoneme.endpoint.model import Endpoint
from axoneme.health.checker import HealthChecker, NodeTarget, Thresholds
from axoneme.health.icmp import Pinger
from axoneme.health.metrics import HealthCollector
from axoneme.health.responder import HEALTH_PORT, http_probe, responder_app, serve
from axoneme.identity.reserved import HEALTH
from axoneme.kit.netns import netns_path, socket_in
from axoneme.labels.derive import reserved
from axoneme.metrics import REGISTRY

if TYPE_CHECKING:
    from axoneme.agent.daemon import AgentContext
    from axoneme.agent.enforcement import Enforcement

log = logging.getLogger(__name__)

CONTAINER_ID = "axoneme-health"
IFNAME = "eth0"
NAMESPACE = "kube-system"  # where its CiliumEndpoint is published


def health_targets(enforcement: Enforcement) -> Iterator[NodeTarget]:
    """Every node, with the health endpoint address its node published (if any)."""
    health_ips = {r.node_ip: r.ipv4 for r in enforcement.ceps.values() if r.identity == HEALTH}
    for node in sorted(enforcement.nodes.values(), key=lambda n: n.name):
        if node.internal_ip:
            yield NodeTarget(node.name, node.internal_ip, health_ips.get(node.internal_ip, ""))


def _netns(*args: str) -> None:
    subprocess.run(["ip", "netns", *args], check=False, capture_output=True)


def _listener(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", HEALTH_PORT))
    sock.listen(64)
    return sock


async def _remove_endpoint(ctx: AgentContext, netns: str) -> None:
    ep = await asyncio.to_thread(ctx.manager.delete, CONTAINER_ID, IFNAME)
    if ep is not None:
        await ctx.enforcement.endpoint_removed(ep)
    if Path(netns_path(netns)).exists():
        await asyncio.to_thread(_netns, "del", netns)


async def _create_endpoint(ctx: AgentContext, netns: str) -> Endpoint:
    await asyncio.to_thread(_netns, "add", netns)
    labels = reserved("health")
    identity = await ctx.enforcement.allocate(labels)
    info = PodInfo(NAMESPACE, f"axoneme-health-{ctx.config.node}", {}, identity)
    ep = await asyncio.to_thread(ctx.manager.add, CONTAINER_ID, IFNAME, netns_path(netns), info)
    await ctx.enforcement.endpoint_ready(ep, labels)
    return ep


async def _endpoint_until_created(ctx: AgentContext, netns: str) -> Endpoint:
    """Create the health endpoint, retrying (the store may be down) until it exists."""
    delay = 0.5
    while True:
        await _remove_endpoint(ctx, netns)  # a previous run's, or a half-made one
        try:
            return await _create_endpoint(ctx, netns)
        except Exception as exc:
            log.warning("cannot create the health endpoint (retrying in %.0fs): %s", delay, exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


async def run(ctx: AgentContext) -> None:
    cfg = ctx.config.health
    if not cfg.enabled:
        return
    runners: list[web.AppRunner] = []
    collector: HealthCollector | None = None
    pinger: Pinger | None = None
    try:
        ep = await _endpoint_until_created(ctx, cfg.netns)
        log.info("health endpoint %d at %s in netns %s", ep.id, ep.ipv4, cfg.netns)
        sock = await asyncio.to_thread(
            socket_in, netns_path(cfg.netns), socket.AF_INET, socket.SOCK_STREAM
        )
        runners.append(await serve(responder_app(ctx.config.node, "endpoint"), _listener(sock)))
        node_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        node_sock.setblocking(False)
        runners.append(await serve(responder_app(ctx.config.node, "node"), _listener(node_sock)))
        pinger = Pinger()

        async def http(ip: str, timeout: float) -> float | None:
            return await http_probe(ip, HEALTH_PORT, timeout)

        checker = HealthChecker(
            ctx.config.node,
            {"icmp": pinger.ping, "http": http},
            window=cfg.window,
            interval=cfg.interval,
            timeout=max(0.2, min(1.0, cfg.interval * 2)),
            thresholds=Thresholds(cfg.loss_threshold, cfg.jitter_threshold),
        )
        collector = HealthCollector(checker)
        REGISTRY.register(collector)
        ctx.service.health = checker.report
        await ctx.enforcement.synced.wait()
        await checker.run(lambda: list(health_targets(ctx.enforcement)))
    finally:
        ctx.service.health = None
        if collector is not None:
            REGISTRY.unregister(collector)
        if pinger is not None:
            pinger.close()
        for runner in runners:
            await runner.cleanup()
        with contextlib.suppress(Exception):
            # Best effort on the way out; the next start removes what is left.
            await _remove_endpoint(ctx, cfg.netns)
