"""toServices expansion: service peers become selectors or CIDRs of the backends."""

from __future__ import annotations

from typing import Any

from axoneme.k8s.objects import Pod
from axoneme.k8s.service import parse_endpointslice, parse_service
from axoneme.policy.parse import parse_policy
from axoneme.policy.services import ServiceView, expand
from axoneme.policy.types import CIDRPeer, Peers, Requirement

NS = "k8s:io.kubernetes.pod.namespace"


def svc(name: str, selector: dict[str, str] | None, labels: dict[str, str] | None = None) -> Any:
    spec: dict[str, Any] = {"ports": [{"port": 80}], "clusterIP": "10.96.0.9"}
    if selector is not None:
        spec["selector"] = selector
    return parse_service(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": spec,
        }
    )


def slice_(service: str, *ips: str) -> Any:
    return parse_endpointslice(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{service}-1",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip]} for ip in ips],
            "ports": [{"port": 8080}],
        }
    )


def cnp(to_services: list[dict[str, Any]]) -> Any:
    return parse_policy(
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {
                "endpointSelector": {"matchLabels": {"app": "app1"}},
                "egress": [{"toServices": to_services}],
            },
        }
    )


VIEW = ServiceView(
    [
        svc("nginx", {"app": "nginx"}),
        svc("ext", None, {"kind": "ext"}),
        svc("other", {"app": "x"}, {"kind": "other"}),
    ],
    [slice_("ext", "10.42.1.7", "198.51.100.10"), slice_("nginx", "10.42.1.5")],
    [Pod("default", "db", {"app": "db"}, pod_ip="10.42.1.7", phase="Running")],
)


def peers(policy: Any) -> Peers:
    (p,) = expand(policy, VIEW)
    (rule,) = p.rules
    assert rule.peers.services == ()
    return rule.peers


def test_selector_service_becomes_its_pod_selector() -> None:
    got = peers(cnp([{"k8sService": {"serviceName": "nginx"}}]))
    (sel,) = got.selectors
    assert Requirement("k8s:app", "In", frozenset({"nginx"})) in sel.requirements
    assert Requirement(NS, "In", frozenset({"default"})) in sel.requirements
    assert got.cidrs == ()


def test_selectorless_service_becomes_pod_identities_and_world_cidrs() -> None:
    got = peers(cnp([{"k8sServiceSelector": {"selector": {"matchLabels": {"kind": "ext"}}}}]))
    (sel,) = got.selectors
    assert Requirement("k8s:app", "In", frozenset({"db"})) in sel.requirements
    assert got.cidrs == (CIDRPeer("198.51.100.10/32"),)


def test_unknown_service_or_other_namespace_matches_nothing() -> None:
    assert peers(cnp([{"k8sService": {"serviceName": "nope"}}])) == Peers()
    other_ns = cnp([{"k8sService": {"serviceName": "nginx", "namespace": "kube-system"}}])
    assert peers(other_ns) == Peers()


def test_policies_without_services_are_returned_as_they_are() -> None:
    plain = parse_policy(
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "q", "namespace": "default"},
            "spec": {"endpointSelector": {}, "egress": [{"toEntities": ["world"]}]},
        }
    )
    assert expand(plain, VIEW)[0] is plain[0]
