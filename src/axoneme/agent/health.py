"""Agent component: the node's health endpoint, its responders, and the health checker.

The health endpoint is a real endpoint (Cilium's cilium-health): a network
namespace wired by the endpoint manager like a pod, with the reserved
identity ``health`` (4) and the datapath's programs on its veth. It is
re-created at every agent start and removed on stop. Both it and the node
answer ICMP (the kernel) and HTTP on port 4240.

Like Cilium's, it is not a pod, so it has no CiliumEndpoint (the operator
would collect one without a pod). Its address goes into the node's entry
instead (CiliumNode's ``spec.health.ipv4``), from which every agent maps it to
``health`` in its ipcache. The checker learns it from the node's own
``/hello`` answer, and accepts it only inside that node's pod CIDR.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from axoneme.endpoint.manager import PodInfo
from axoneme.endpoint.model import Endpoint
from axoneme.health.checker import HealthChecker, NodeTarget, Thresholds
from axoneme.health.icmp import Pinger
from axoneme.health.metrics import HealthCollector
from axoneme.health.responder import HEALTH_PORT, http_probe, responder_app, serve
from axoneme.k8s.objects import Node
from axoneme.kit.netns import netns_path, socket_in
from axoneme.labels.derive import reserved
from axoneme.metrics import REGISTRY

if TYPE_CHECKING:
    from axoneme.agent.daemon import AgentContext

log = logging.getLogger(__name__)

CONTAINER_ID = "axoneme-health"
IFNAME = "eth0"


def health_targets(nodes: Iterable[Node], learned: Mapping[str, str]) -> Iterator[NodeTarget]:
    """Every node, with the health endpoint address it announced (node IP → health IP).

    An announced address outside the node's pod CIDRs is ignored: we probe only
    addresses the cluster gave that node, never one a peer merely names."""
    for node in sorted(nodes, key=lambda n: n.name):
        if not node.internal_ip:
            continue
        announced, health_ip = learned.get(node.internal_ip, ""), ""
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(announced)
            if any(address in ipaddress.ip_network(c) for c in node.pod_cidrs):
                health_ip = str(address)
        yield NodeTarget(node.name, node.internal_ip, health_ip)


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
    info = PodInfo(identity=identity)  # no namespace/pod: not a pod, no CiliumEndpoint
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
        pinger = Pinger()
        learned: dict[str, str] = {}  # node IP → the health IP its /hello announced

        async def http(ip: str, timeout: float) -> float | None:
            answer = await http_probe(ip, HEALTH_PORT, timeout)
            if answer is None:
                return None
            if answer.body.get("role") == "node":
                learned[ip] = str(answer.body.get("healthIP", ""))
            return answer.seconds

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
        ctx.service.health = checker.report  # empty (0 rounds) until probing starts

        # The endpoint is regenerated with the node's addresses: know the nodes first.
        await ctx.enforcement.synced.wait()
        ep = await _endpoint_until_created(ctx, cfg.netns)
        log.info("health endpoint %d at %s in netns %s", ep.id, ep.ipv4, cfg.netns)
        ctx.node_entry.set_health(ep.ipv4)
        sock = await asyncio.to_thread(
            socket_in, netns_path(cfg.netns), socket.AF_INET, socket.SOCK_STREAM
        )
        runners.append(await serve(responder_app(ctx.config.node, "endpoint"), _listener(sock)))
        node_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        node_sock.setblocking(False)
        node_app = responder_app(ctx.config.node, "node", ep.ipv4)
        runners.append(await serve(node_app, _listener(node_sock)))
        await checker.run(lambda: list(health_targets(ctx.enforcement.nodes.values(), learned)))
    finally:
        ctx.node_entry.set_health("")
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
