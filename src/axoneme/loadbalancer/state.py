"""Services and EndpointSlices in, one node's load-balancer frontends out (pure).

A frontend is one address a client can connect to: the cluster IP, each
external IP and each LoadBalancer ingress address, per service port. Its
backends come from the service's EndpointSlices, matched by port name and
protocol, as kube-proxy matches them:

- *active* backends are ready ones; when none is ready, serving terminating
  ones (Kubernetes' ProxyTerminatingEndpoints), so a rolling update never
  leaves a window with nothing to send to;
- terminating backends are listed too (``service list`` shows them, existing
  connections keep them) but take no new connections while others are ready;
- ``internalTrafficPolicy: Local`` limits a cluster-IP frontend to the
  node's own backends;
- ``externalTrafficPolicy: Local`` limits the other frontends to the node's
  own backends for clients outside the cluster only: each such frontend gets
  an *internal* twin with every backend, which in-cluster clients (the socket
  LB) use instead, as Cilium's two-scope service entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from axoneme.k8s.service import EndpointSlice, Service
from axoneme.loadbalancer.maglev import DEFAULT_TABLE_SIZE

__all__ = [
    "ALGORITHM_ANNOTATION",
    "BackendAddr",
    "Frontend",
    "LBConfig",
    "desired_frontends",
]

ALGORITHM_ANNOTATION = "service.axoneme.io/lb-algorithm"
Algorithm = Literal["random", "maglev"]
FrontendType = Literal["ClusterIP", "ExternalIPs", "LoadBalancer", "NodePort"]


@dataclass(frozen=True)
class LBConfig:
    node: str
    algorithm: Algorithm = "random"
    maglev_table_size: int = DEFAULT_TABLE_SIZE
    node_ip: str = ""  # this node's address: NodePort frontends live there ("" = none)


@dataclass(frozen=True, order=True)
class BackendAddr:
    ip: str
    port: int
    protocol: str
    terminating: bool = False
    node: str = ""

    @property
    def name(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class Frontend:
    ip: str
    port: int
    protocol: str
    type: FrontendType
    service: str  # namespace/name
    port_name: str
    backends: tuple[BackendAddr, ...]  # every backend, terminating included
    active: tuple[BackendAddr, ...]  # those new connections may pick
    algorithm: Algorithm = "random"
    affinity_timeout: int = 0  # seconds; 0: no session affinity
    # externalTrafficPolicy: Local: this (external) frontend has an internal twin;
    # internal: this is that twin, for in-cluster clients.
    two_scopes: bool = False
    internal: bool = False

    @property
    def key(self) -> tuple[str, int, str, bool]:
        return (self.ip, self.port, self.protocol, self.internal)


def _algorithm(svc: Service, default: Algorithm) -> Algorithm:
    value = svc.annotations.get(ALGORITHM_ANNOTATION, default)
    return "maglev" if value == "maglev" else "random" if value == "random" else default


def _backends(
    svc: Service, slices: Iterable[EndpointSlice], name: str, proto: str
) -> list[BackendAddr]:
    out: dict[tuple[str, int], BackendAddr] = {}
    for s in slices:
        if s.namespace != svc.namespace or s.service != svc.name:
            continue
        port = next((p.port for p in s.ports if p.name == name and p.protocol == proto), None)
        if port is None:
            continue
        for e in s.endpoints:
            if not e.serving and not e.ready:
                continue  # neither ready nor serving: not a backend at all
            addr = BackendAddr(e.address, port, proto, e.terminating or not e.ready, e.node_name)
            out.setdefault((addr.ip, addr.port), addr)
    return sorted(out.values())


def _active(backends: list[BackendAddr]) -> tuple[BackendAddr, ...]:
    ready = [b for b in backends if not b.terminating]
    return tuple(ready or backends)


def desired_frontends(
    services: Iterable[Service], slices: Iterable[EndpointSlice], config: LBConfig
) -> list[Frontend]:
    slices = list(slices)
    out: dict[tuple[str, int, str, bool], Frontend] = {}
    for svc in sorted(services, key=lambda s: s.ref):
        if svc.headless or not svc.cluster_ip:
            continue  # headless: DNS only; no IP yet: nothing to serve
        algorithm = _algorithm(svc, config.algorithm)
        timeout = svc.affinity_timeout if svc.session_affinity == "ClientIP" else 0
        for sp in svc.ports:
            backends = _backends(svc, slices, sp.name, sp.protocol)
            addresses: list[tuple[str, FrontendType]] = [(svc.cluster_ip, "ClusterIP")]
            addresses += [(ip, "ExternalIPs") for ip in svc.external_ips]
            if svc.type == "LoadBalancer":
                addresses += [(ip, "LoadBalancer") for ip in svc.load_balancer_ingress]
            ports = {kind: sp.port for _, kind in addresses}
            if sp.node_port and config.node_ip and svc.type in ("NodePort", "LoadBalancer"):
                addresses.append((config.node_ip, "NodePort"))
                ports["NodePort"] = sp.node_port
            local = [b for b in backends if b.node == config.node]
            for ip, kind in addresses:
                chosen = backends
                if kind == "ClusterIP" and svc.internal_traffic_policy == "Local":
                    chosen = local
                # External clients keep their address: only this node's backends;
                # in-cluster ones use the internal twin (every backend, or this
                # node's under internalTrafficPolicy: Local as well).
                two = kind != "ClusterIP" and svc.external_traffic_policy == "Local"
                twin = local if svc.internal_traffic_policy == "Local" else backends
                scopes = [(local, False), (twin, True)] if two else [(chosen, False)]
                fes = [
                    Frontend(
                        ip=ip,
                        port=ports[kind],
                        protocol=sp.protocol,
                        type=kind,
                        service=svc.ref,
                        port_name=sp.name,
                        backends=tuple(picked),
                        active=_active(picked),
                        algorithm=algorithm,
                        affinity_timeout=timeout,
                        two_scopes=two and not internal,
                        internal=internal,
                    )
                    for picked, internal in scopes
                ]
                # Two services claiming one address and port: the first (by name) keeps
                # it, per scope (a twin whose external entry another service won is
                # never looked up: that entry has no LB_F_TWO_SCOPES).
                for fe in fes:
                    out.setdefault(fe.key, fe)
    return list(out.values())
