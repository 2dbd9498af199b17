"""The agent's health-check node port listeners (kube-proxy's service health
server; Cilium's ``--enable-health-check-nodeport``).

For every LoadBalancer Service with ``externalTrafficPolicy: Local``, the node
listens with HTTP on the service's ``spec.healthCheckNodePort`` on all its
addresses (0.0.0.0 in the node's network namespace, as kube-proxy) and answers
any path with kube-proxy's JSON: 200 when the node has a ready backend of the
service, 503 when it has none (:func:`axoneme.loadbalancer.healthcheck.response`).
Which ports and which counts come from :mod:`axoneme.loadbalancer.healthcheck`
(pure) over the service component's view of Services and EndpointSlices; this
module only opens, keeps and closes listeners as that changes, and answers
from the latest counts (a count change reopens nothing).

The port is no frontend: the agent writes no service entry for it, so tc and
XDP pass its packets to this listener untouched. A port that cannot be bound
is logged, shown in ``status --verbose`` and tried again every
``RETRY_BIND`` seconds; the rest keep serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aiohttp import web

from axoneme.k8s.service import EndpointSlice, Service
from axoneme.loadbalancer.healthcheck import HealthCheck, health_checks, response
from axoneme.store.types import Key

__all__ = ["HealthCheckServer", "ServiceView", "run"]

log = logging.getLogger("axoneme.agent.healthcheck_nodeport")

SETTLE = 0.05  # seconds of quiet before recomputing, as the service maps' sync
RETRY_BIND = 5.0  # seconds between attempts at a port that could not be bound


class ServiceView(Protocol):
    """What the listeners need from the service component (agent/loadbalancer.py)."""

    services: dict[Key, Service]
    slices_of: dict[str, dict[Key, EndpointSlice]]
    synced: set[str]
    health_changed: asyncio.Event  # set on every change of either kind


def _healthy() -> bool:
    return True


class HealthCheckServer:
    """One aiohttp site per health-check port on a shared runner. ``proxy_healthy``
    says whether this node's service maps are programmed (kube-proxy's own health)."""

    def __init__(self, host: str = "0.0.0.0", proxy_healthy: Callable[[], bool] = _healthy) -> None:
        self.host = host
        self._proxy_healthy = proxy_healthy
        self._checks: dict[int, HealthCheck] = {}
        self._sites: dict[int, web.TCPSite] = {}
        self.errors: dict[int, str] = {}  # port -> why it is not listening
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)  # any path, as kube-proxy
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # closes every site
        self._runner, self._sites = None, {}

    @property
    def listening(self) -> set[int]:
        return set(self._sites)

    async def set(self, checks: dict[int, HealthCheck]) -> None:
        """Serve exactly ``checks``: close the ports no longer wanted, answer the
        kept ones with their new counts, open (or retry) the others."""
        assert self._runner is not None, "start() first"
        for port in sorted(self._sites.keys() - checks.keys()):
            await self._sites.pop(port).stop()
            log.info("health check node port %d closed", port)
        self._checks = dict(checks)
        self.errors = {p: e for p, e in self.errors.items() if p in checks}
        for port in sorted(checks.keys() - self._sites.keys()):
            site = web.TCPSite(self._runner, self.host, port)
            try:
                await site.start()
            except OSError as exc:
                # Another process holds it (or the address is gone): this service's
                # check is unavailable on this node, the others are not.
                if self.errors.get(port) != str(exc):
                    log.error(
                        "health check node port %d for %s: cannot listen: %s",
                        port,
                        checks[port].service,
                        exc,
                    )
                self.errors[port] = str(exc)
                continue
            self.errors.pop(port, None)
            self._sites[port] = site
            log.info("health check node port %d for %s listening", port, checks[port].service)

    async def _handle(self, request: web.Request) -> web.Response:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        check = self._checks.get(sockname[1]) if sockname else None
        if check is None:  # a kept-alive connection to a port just closed
            return web.Response(status=404, text="no health check on this port\n")
        status, headers, body = response(check, self._proxy_healthy())
        return web.Response(status=status, headers=headers, body=body)

    def report(self) -> list[dict[str, Any]]:
        """Each port: its service, the count it answers with, and whether it listens."""
        healthy = self._proxy_healthy()
        out = []
        for port, check in sorted(self._checks.items()):
            status, _, _ = response(check, healthy)
            out.append(
                {
                    "port": port,
                    "service": check.service,
                    "localEndpoints": check.local_endpoints,
                    "status": status if port in self._sites else 0,
                    "error": self.errors.get(port, ""),
                }
            )
        return out


def desired(view: ServiceView, node: str) -> dict[int, HealthCheck]:
    def slices_of(ref: str) -> Iterable[EndpointSlice]:
        return view.slices_of.get(ref, {}).values()

    return health_checks(view.services.values(), slices_of, node)


async def run(view: ServiceView, node: str, server: HealthCheckServer) -> None:
    """Keep ``server`` serving what ``view`` says until cancelled, then close it."""
    await server.start()
    try:
        while True:
            timeout = RETRY_BIND if server.errors else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(view.health_changed.wait(), timeout=timeout)
            # Let a burst settle; answer nothing before both kinds are listed
            # (a node with backends must not say 503 for want of its slices).
            while True:
                view.health_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(view.health_changed.wait(), timeout=SETTLE)
                if not view.health_changed.is_set():
                    break
            if view.synced >= {"Service", "EndpointSlice"}:
                await server.set(desired(view, node))
    finally:
        await server.close()
