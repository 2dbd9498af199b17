"""``toServices``: service peers expanded into the peers the resolver knows (pure).

A rule's :class:`~axoneme.policy.types.ServicePeer` names Services (by name, or
by a selector over Service labels, in a namespace or any). Each Service found
contributes its backends:

- a Service **with a selector**: its pods, as a selector (the Service's
  selector in the Service's namespace), so the rule follows pods as they come
  and go, exactly like ``toEndpoints``;
- a Service **without a selector**: the addresses of its EndpointSlices. An
  address that is a known pod's becomes a selector on that pod's labels and
  namespace (the datapath enforces by identity); any other address becomes a
  /32 CIDR peer (the world).

Cilium 1.14 honoured ``toServices`` only for selector-less services, which is
what surprised the reference document's author (``app1 -> nginx`` through a
selector Service was denied); both kinds work here. The socket load balancer
translates before the datapath sees a packet, so the rule is enforced on the
backend's address and port: ``toPorts`` in the same rule name backend
(target) ports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from axoneme.k8s.objects import Pod
from axoneme.k8s.service import EndpointSlice, Service
from axoneme.policy.parse_common import canonical, namespace_is
from axoneme.policy.types import CIDRPeer, Peers, Policy, Requirement, Selector, ServicePeer

__all__ = ["ServiceView", "expand"]


class ServiceView:
    """The Services, EndpointSlices and pod addresses a node knows, indexed once."""

    def __init__(
        self,
        services: Iterable[Service],
        slices: Iterable[EndpointSlice],
        pods: Iterable[Pod],
    ) -> None:
        self.services = sorted(services, key=lambda s: s.ref)
        self.addresses: dict[str, list[str]] = {}
        for s in slices:
            if s.service:
                ref = f"{s.namespace}/{s.service}"
                self.addresses.setdefault(ref, []).extend(e.address for e in s.endpoints)
        self.pods_by_ip = {p.pod_ip: p for p in pods if p.pod_ip}

    def matching(self, peer: ServicePeer) -> list[Service]:
        out = []
        for svc in self.services:
            if peer.namespace and svc.namespace != peer.namespace:
                continue
            if peer.name and svc.name != peer.name:
                continue
            if peer.selector is not None and not _labels_match(peer.selector, svc.labels):
                continue
            out.append(svc)
        return out


def _labels_match(selector: Selector, labels: Mapping[str, str]) -> bool:
    """A service selector over plain Service labels (no sources: k8sServiceSelector)."""
    for r in selector.requirements:
        key = r.key.split(":", 1)[1] if ":" in r.key else r.key
        present = key in labels
        value = labels.get(key)
        ok = {
            "In": present and value in r.values,
            "NotIn": not present or value not in r.values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(r.operator, False)
        if not ok:
            return False
    return True


def _pod_selector(labels: Mapping[str, str], namespace: str) -> Selector:
    reqs = [Requirement(f"k8s:{k}", "In", frozenset({v})) for k, v in labels.items()]
    return canonical([*reqs, namespace_is(namespace)])


def _backends(svc: Service, view: ServiceView) -> tuple[list[Selector], list[CIDRPeer]]:
    if svc.selector is not None:
        return [_pod_selector(svc.selector, svc.namespace)], []
    selectors: list[Selector] = []
    cidrs: list[CIDRPeer] = []
    for ip in view.addresses.get(svc.ref, []):
        pod = view.pods_by_ip.get(ip)
        if pod is not None:
            selectors.append(_pod_selector(pod.labels, pod.namespace))
        else:
            cidrs.append(CIDRPeer(f"{ip}/32"))
    return selectors, cidrs


def _expand_peers(peers: Peers, view: ServiceView) -> Peers:
    selectors, cidrs = list(peers.selectors), list(peers.cidrs)
    for peer in peers.services:
        for svc in view.matching(peer):
            more_sel, more_cidr = _backends(svc, view)
            selectors += [s for s in more_sel if s not in selectors]
            cidrs += [c for c in more_cidr if c not in cidrs]
    return replace(peers, selectors=tuple(selectors), cidrs=tuple(cidrs), services=())


def expand(policies: tuple[Policy, ...], view: ServiceView) -> tuple[Policy, ...]:
    """The policies with every service peer replaced by its current backends.

    Policies without ``toServices`` are returned as they are (the same
    objects), so the agent's incremental regeneration sees them unchanged.
    """
    out = []
    for policy in policies:
        if not any(rule.peers.services for rule in policy.rules):
            out.append(policy)
            continue
        rules = tuple(
            replace(rule, peers=_expand_peers(rule.peers, view)) if rule.peers.services else rule
            for rule in policy.rules
        )
        out.append(replace(policy, rules=rules))
    return tuple(out)
