"""Service and EndpointSlice validation, cluster IP / node port allocation."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from axoneme.k8s.allocate import allocate_service
from axoneme.k8s.errors import ValidationError
from axoneme.k8s.manifest import parse_manifest
from axoneme.k8s.service import parse_endpointslice, parse_service


def svc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec},
    }


def eps(*endpoints: Any, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-1",
            "namespace": "demo",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "endpoints": list(endpoints),
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
        **extra,
    }


def test_service_defaults() -> None:
    s = parse_service(svc())
    assert s.type == "ClusterIP"
    assert s.ports[0].protocol == "TCP" and s.ports[0].target_port == 80
    assert s.session_affinity == "None" and s.external_traffic_policy == "Cluster"
    assert s.selector == {"app": "web"}


def test_service_full() -> None:
    s = parse_service(
        svc(
            type="LoadBalancer",
            ports=[
                {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
                {"name": "sig", "port": 80, "protocol": "SCTP"},
            ],
            externalIPs=["198.51.100.20"],
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}},
            externalTrafficPolicy="Local",
            internalTrafficPolicy="Local",
        )
        | {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    )
    assert [p.target_port for p in s.ports] == ["http", 5353, 80]
    assert s.ports[0].node_port == 30080
    assert s.affinity_timeout == 30 and s.session_affinity == "ClientIP"
    assert s.external_traffic_policy == "Local" and s.internal_traffic_policy == "Local"
    assert s.load_balancer_ingress == ("192.0.2.1",)
    assert s.external_ips == ("198.51.100.20",)


def test_selectorless_service() -> None:
    raw = svc()
    del raw["spec"]["selector"]
    assert parse_service(raw).selector is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"ports": []}, "spec.ports"),
        ({"ports": [{"port": 0}]}, "spec.ports[0].port"),
        ({"ports": [{"port": 80, "protocol": "ICMP"}]}, "spec.ports[0].protocol"),
        ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name"),
        ({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}, "spec.ports[1].name"),
        ({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}, "spec.ports[1]"),
        ({"ports": [{"port": 80, "targetPort": "Not_A_Name"}]}, "spec.ports[0].targetPort"),
        ({"ports": [{"port": 80, "targetPort": 70000}]}, "spec.ports[0].targetPort"),
        ({"ports": [{"port": 80, "nodePort": 30001}]}, "spec.ports[0].nodePort"),
        ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}, "spec.ports[0].nodePort"),
        ({"type": "ExternalName"}, "spec.type"),
        ({"type": "Weird"}, "spec.type"),
        ({"clusterIP": "10.96.0.300"}, "spec.clusterIP"),
        ({"clusterIP": "fd00::1"}, "spec.clusterIP"),
        ({"externalIPs": ["x"]}, "spec.externalIPs[0]"),
        ({"sessionAffinity": "Cookie"}, "spec.sessionAffinity"),
        (
            {
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}},
            },
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        ),
        (
            {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}},
            "spec.sessionAffinityConfig",
        ),
        ({"externalTrafficPolicy": "Local"}, "spec.externalTrafficPolicy"),
        ({"type": "NodePort", "externalTrafficPolicy": "Nearby"}, "spec.externalTrafficPolicy"),
        ({"internalTrafficPolicy": "Zone"}, "spec.internalTrafficPolicy"),
        ({"selector": {"bad key!": "x"}}, "spec.selector['bad key!']"),
        ({"loadBalancerIP": "192.0.2.9"}, "spec.loadBalancerIP"),
    ],
)
def test_bad_service_names_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_service(svc(**spec))
    assert info.value.field == field


def test_bad_service_status_names_the_field() -> None:
    raw = svc() | {"status": {"loadBalancer": {"ingress": [{"ip": "nope"}]}}}
    with pytest.raises(ValidationError) as info:
        parse_service(raw)
    assert info.value.field == "status.loadBalancer.ingress[0].ip"


def test_endpointslice_conditions_follow_kubernetes_nil_rules() -> None:
    s = parse_endpointslice(
        eps(
            {"addresses": ["10.42.1.5"]},
            {"addresses": ["10.42.1.6"], "conditions": {"ready": False}},
            {
                "addresses": ["10.42.1.7"],
                "conditions": {"ready": False, "serving": True, "terminating": True},
                "nodeName": "node1",
                "targetRef": {"kind": "Pod", "namespace": "demo", "name": "web-1"},
            },
        )
    )
    assert s.service == "web"
    a, b, c = s.endpoints
    assert (a.ready, a.serving, a.terminating) == (True, True, False)
    assert (b.ready, b.serving, b.terminating) == (False, False, False)
    assert (c.ready, c.serving, c.terminating) == (False, True, True)
    assert c.target_pod == "demo/web-1" and c.node_name == "node1"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o.update(addressType="IPv6"), "addressType"),
        (lambda o: o.pop("addressType"), "addressType"),
        (lambda o: o.update(endpoints=[{"addresses": []}]), "endpoints[0].addresses"),
        (lambda o: o.update(endpoints=[{"addresses": ["10.1.1"]}]), "endpoints[0].addresses[0]"),
        (
            lambda o: o.update(
                endpoints=[{"addresses": ["10.1.1.1"], "conditions": {"ready": "y"}}]
            ),
            "endpoints[0].conditions.ready",
        ),
        (lambda o: o.update(ports=[{"port": 99999}]), "ports[0].port"),
        (lambda o: o.update(ports=[{"port": 80, "protocol": "X"}]), "ports[0].protocol"),
        (lambda o: o.update(ports=[{"port": 80}, {"port": 81}]), "ports[1].name"),
        (lambda o: o["metadata"].update(name="Bad_Name"), "metadata.name"),
    ],
)
def test_bad_endpointslice_names_the_field(mutate: Any, field: str) -> None:
    raw = eps({"addresses": ["10.42.1.5"]})
    mutate(raw)
    with pytest.raises(ValidationError) as info:
        parse_endpointslice(raw)
    assert info.value.field == field


def test_manifest_accepts_service_and_slice_and_defaults_namespace() -> None:
    raw = svc()
    del raw["metadata"]["namespace"]
    objs = parse_manifest("\n---\n".join(json.dumps(o) for o in (raw, eps())), "m.yaml")
    assert objs[0]["metadata"]["namespace"] == "default"
    assert [o["kind"] for o in objs] == ["Service", "EndpointSlice"]


def test_allocation_gives_free_ips_and_node_ports() -> None:
    other = allocate_service(svc(), None, [])
    assert other["spec"]["clusterIP"] == "10.96.0.2"
    raw = svc(type="NodePort", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}])
    raw["metadata"]["name"] = "np"
    out = allocate_service(raw, None, [other])
    assert out["spec"]["clusterIP"] == "10.96.0.3"
    assert out["spec"]["clusterIPs"] == ["10.96.0.3"]
    assert [p["nodePort"] for p in out["spec"]["ports"]] == [30000, 30001]
    # Re-applying keeps what was allocated, even when the manifest omits it.
    again = allocate_service(raw, out, [other])
    assert again["spec"] == out["spec"]
    assert raw["spec"].get("clusterIP") is None  # the input is not modified


def test_allocation_refuses_taken_or_foreign_or_changed_ips() -> None:
    first = allocate_service(svc(clusterIP="10.96.5.5"), None, [])
    with pytest.raises(ValidationError, match="already allocated"):
        allocate_service(svc(clusterIP="10.96.5.5"), None, [first])
    with pytest.raises(ValidationError, match="not in the service CIDR") as info:
        allocate_service(svc(clusterIP="10.42.0.5"), None, [])
    assert info.value.field == "spec.clusterIP"
    with pytest.raises(ValidationError, match="immutable"):
        allocate_service(svc(clusterIP="10.96.5.6"), first, [])
    taken = copy.deepcopy(svc(type="NodePort", ports=[{"port": 80, "nodePort": 30500}]))
    taken["spec"]["clusterIP"] = "10.96.0.9"
    with pytest.raises(ValidationError) as info:
        allocate_service(
            svc(type="NodePort", ports=[{"port": 81, "nodePort": 30500}]), None, [taken]
        )
    assert info.value.field == "spec.ports[0].nodePort"


def test_headless_gets_no_ip() -> None:
    assert allocate_service(svc(clusterIP="None"), None, [])["spec"]["clusterIP"] == "None"
