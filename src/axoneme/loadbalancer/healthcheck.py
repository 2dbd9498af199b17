"""Health-check node ports: which ports one node serves and what each answers (pure).

A LoadBalancer Service with ``externalTrafficPolicy: Local`` has a
``spec.healthCheckNodePort``; every node answers HTTP there, as kube-proxy
does, so that an external load balancer sends the service's traffic only to
nodes with a ready backend of their own (only those serve it, see
:mod:`axoneme.loadbalancer.state`). The answer is kube-proxy's: 200 with the
count of this node's ready endpoints when there is one, 503 with 0 otherwise.

The count is kube-proxy's too (``EndpointsMap.LocalReadyEndpoints``): distinct
addresses of ready, not terminating endpoints on this node, over the slices of
the service that carry one of its ports (name and protocol), so a backend
serving two ports is one endpoint. A terminating backend still finishes its
connections but counts for nothing: the node fails its check and is drained.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from axoneme.k8s.service import EndpointSlice, Service

__all__ = ["HealthCheck", "health_checks", "local_ready_endpoints", "response"]


@dataclass(frozen=True)
class HealthCheck:
    """One service's health check on this node."""

    port: int
    namespace: str
    name: str
    local_endpoints: int

    @property
    def service(self) -> str:
        return f"{self.namespace}/{self.name}"


def local_ready_endpoints(svc: Service, slices: Iterable[EndpointSlice], node: str) -> int:
    ports = {(p.name, p.protocol) for p in svc.ports}
    addresses = {
        e.address
        for s in slices
        if s.namespace == svc.namespace
        and s.service == svc.name
        and any((p.name, p.protocol) in ports for p in s.ports)
        for e in s.endpoints
        if e.node_name == node and e.ready and not e.terminating
    }
    return len(addresses)


def health_checks(
    services: Iterable[Service],
    slices_of: Callable[[str], Iterable[EndpointSlice]],
    node: str,
) -> dict[int, HealthCheck]:
    """Port -> the health check ``node`` serves there, for every Service that has
    one (``slices_of`` gives a service's slices by ``namespace/name``). Two
    services claiming one port (which ``apply`` never allows) leave it to the
    first by name, as frontends do."""
    out: dict[int, HealthCheck] = {}
    wanted = [s for s in services if s.health_check_node_port and s.needs_health_check_node_port]
    for svc in sorted(wanted, key=lambda s: s.ref):
        port = svc.health_check_node_port
        if port not in out:
            count = local_ready_endpoints(svc, slices_of(svc.ref), node)
            out[port] = HealthCheck(port, svc.namespace, svc.name, count)
    return out


def response(check: HealthCheck, proxy_healthy: bool = True) -> tuple[int, dict[str, str], bytes]:
    """kube-proxy's answer (``pkg/proxy/healthcheck``): status, headers, body.

    200 only with a local endpoint and a healthy proxy (here: the service maps
    were written); the body is tab-indented, no final newline, byte for byte
    kube-proxy's; the weight header lets a load balancer weigh nodes by backends."""
    body = {
        "service": {"namespace": check.namespace, "name": check.name},
        "localEndpoints": check.local_endpoints,
        "serviceProxyHealthy": proxy_healthy,
    }
    headers = {
        "Content-Type": "application/json",
        "X-Content-Type-Options": "nosniff",
        "X-Load-Balancing-Endpoint-Weight": str(check.local_endpoints),
    }
    status = 200 if check.local_endpoints > 0 and proxy_healthy else 503
    return status, headers, json.dumps(body, indent="\t").encode()
