"""Who is behind an address: the enrichment of flows with endpoints (pure).

A :class:`Directory` is an immutable snapshot of what the agent knows:
every endpoint of the cluster by IP (namespace, pod, labels) and every
identity's labels. The observer builds a new one when the agent's view
changes and decodes each batch with the snapshot current when it was read,
so a pod deleted after its packet was dropped still has a name.

``ServiceLookup`` is the hook for service names: the load balancer registers
a function (address, port, protocol) -> "namespace/name".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from axoneme.observer.flow import EndpointResolver, FlowEndpoint, Workload

__all__ = ["Directory", "EndpointMeta", "ServiceLookup", "build_directory"]

ServiceLookup = Callable[[str, int, int], str]
"""(destination address, port, IP protocol) -> "namespace/name", or "" if none."""


@dataclass(frozen=True)
class EndpointMeta:
    ip: str
    namespace: str
    pod_name: str
    identity: int
    labels: tuple[str, ...]
    endpoint_id: int = 0  # set for endpoints of this node
    node: str = ""


def workloads_of(labels: Iterable[str]) -> tuple[Workload, ...]:
    """The pod's workload, from its app label (the lab's pods have no owners)."""
    for wanted in ("k8s:app.kubernetes.io/name=", "k8s:app="):
        for label in labels:
            if label.startswith(wanted):
                return (Workload(label[len(wanted) :], ""),)
    return ()


def _no_service(_ip: str, _port: int, _protocol: int) -> str:
    return ""


@dataclass
class Directory(EndpointResolver):
    """Endpoints by IP and identities' labels; resolves (ip, identity) with a memo."""

    endpoints: Mapping[str, EndpointMeta] = field(default_factory=dict)
    identity_labels: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    services: ServiceLookup = _no_service
    _memo: dict[tuple[str, int], FlowEndpoint] = field(default_factory=dict, repr=False)

    def endpoint(self, ip: str, identity: int) -> FlowEndpoint:
        key = (ip, identity)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        meta = self.endpoints.get(ip)
        if meta is not None and (meta.identity == identity or identity == 0):
            labels = meta.labels or self.identity_labels.get(meta.identity, ())
            made = FlowEndpoint(
                meta.endpoint_id,
                meta.identity,
                meta.namespace,
                meta.pod_name,
                labels,
                workloads_of(labels),
            )
        else:
            # Not a known endpoint (world, host, a CIDR), or the datapath saw
            # another identity than the store holds: the packet's identity wins.
            made = FlowEndpoint(identity=identity, labels=self.identity_labels.get(identity, ()))
        if len(self._memo) > 65536:
            self._memo.clear()
        self._memo[key] = made
        return made

    @property
    def has_services(self) -> bool:  # type: ignore[override]
        return self.services is not _no_service

    def service(self, ip: str, port: int, protocol: int) -> str:
        return self.services(ip, port, protocol)


def build_directory(
    endpoints: Iterable[EndpointMeta],
    identity_labels: Mapping[int, Iterable[str]],
    services: ServiceLookup | None = None,
) -> Directory:
    by_ip: dict[str, EndpointMeta] = {}
    for meta in endpoints:
        # A local endpoint (with its ID) wins over the store's copy of it.
        if meta.ip and (meta.ip not in by_ip or meta.endpoint_id):
            by_ip[meta.ip] = meta
    labels = {num: tuple(sorted(ls)) for num, ls in identity_labels.items()}
    return Directory(by_ip, labels, services or _no_service)
