"""The API server's part of ``apply`` for the health-check node port
(``spec.healthCheckNodePort``): allocated for LoadBalancer + externalTrafficPolicy
Local, kept across re-applies, validated when asked for, released when no
longer needed. (Cluster IPs and node ports: test_k8s_service.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from axoneme.k8s.allocate import allocate_service
from axoneme.k8s.errors import ValidationError
from axoneme.k8s.service import parse_service


def svc(
    name: str = "web", ports: list[dict[str, Any]] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {"selector": {"app": "web"}, "ports": ports or [{"port": 80}], **spec},
    }


def lb_local(name: str = "web", **spec: Any) -> dict[str, Any]:
    return svc(name, type="LoadBalancer", externalTrafficPolicy="Local", **spec)


def test_allocated_after_the_node_ports_and_parsed() -> None:
    out = allocate_service(lb_local(), None, [])
    assert out["spec"]["ports"][0]["nodePort"] == 30000
    assert out["spec"]["healthCheckNodePort"] == 30001
    assert parse_service(out).health_check_node_port == 30001


def test_only_loadbalancer_with_local_policy_gets_one() -> None:
    for raw in (
        svc(type="LoadBalancer"),
        svc(type="LoadBalancer", externalTrafficPolicy="Cluster"),
        svc(type="NodePort", externalTrafficPolicy="Local"),
        svc(),
    ):
        out = allocate_service(raw, None, [])
        assert "healthCheckNodePort" not in out["spec"], raw
        assert parse_service(out).health_check_node_port == 0


def test_skips_every_port_number_in_use_whatever_its_protocol() -> None:
    udp = svc("dns", type="NodePort", ports=[{"port": 53, "protocol": "UDP", "nodePort": 30001}])
    other = allocate_service(lb_local("other", healthCheckNodePort=30002), None, [udp])
    assert other["spec"]["ports"][0]["nodePort"] == 30000
    out = allocate_service(lb_local(), None, [udp, other])
    # A TCP node port may share its number with a UDP one (two map entries)...
    assert out["spec"]["ports"][0]["nodePort"] == 30001
    # ...but the health check's number is free of every protocol's node ports.
    assert out["spec"]["healthCheckNodePort"] == 30003


def test_node_ports_skip_other_services_health_check_ports() -> None:
    other = allocate_service(lb_local("other", healthCheckNodePort=30000), None, [])
    assert other["spec"]["ports"][0]["nodePort"] == 30001
    out = allocate_service(
        svc(type="NodePort", ports=[{"port": 53, "protocol": "UDP"}]), None, [other]
    )
    # 30000, a health check's, is skipped for UDP too; 30001 is taken for TCP only.
    assert out["spec"]["ports"][0]["nodePort"] == 30001
    with pytest.raises(ValidationError, match="already allocated") as info:
        allocate_service(
            svc(type="NodePort", ports=[{"port": 80, "nodePort": 30000}]), None, [other]
        )
    assert info.value.field == "spec.ports[0].nodePort"


def test_a_requested_port_is_used_and_held_before_node_ports() -> None:
    out = allocate_service(lb_local(healthCheckNodePort=30000), None, [])
    assert out["spec"]["healthCheckNodePort"] == 30000
    assert out["spec"]["ports"][0]["nodePort"] == 30001


@pytest.mark.parametrize(
    "taken_by",
    [
        svc("np", type="NodePort", ports=[{"port": 80, "nodePort": 31000}]),
        svc("np", type="NodePort", ports=[{"port": 53, "protocol": "UDP", "nodePort": 31000}]),
        lb_local("hc", healthCheckNodePort=31000),
    ],
)
def test_a_requested_port_in_use_is_refused_naming_the_field(taken_by: dict[str, Any]) -> None:
    other = allocate_service(taken_by, None, [])
    with pytest.raises(ValidationError, match="31000 is already allocated") as info:
        allocate_service(lb_local(healthCheckNodePort=31000), None, [other])
    assert info.value.field == "spec.healthCheckNodePort"


def test_kept_across_reapply_and_immutable() -> None:
    first = allocate_service(lb_local(), None, [])
    again = allocate_service(lb_local(), first, [])
    assert again["spec"] == first["spec"]
    same = allocate_service(lb_local(healthCheckNodePort=30001), first, [])
    assert same["spec"]["healthCheckNodePort"] == 30001
    with pytest.raises(ValidationError, match="immutable") as info:
        allocate_service(lb_local(healthCheckNodePort=31000), first, [])
    assert info.value.field == "spec.healthCheckNodePort"


def test_asking_for_a_node_port_the_service_keeps_is_refused() -> None:
    first = allocate_service(svc(type="LoadBalancer"), None, [])
    assert first["spec"]["ports"][0]["nodePort"] == 30000
    with pytest.raises(ValidationError, match=r"spec\.ports\[0\]\.nodePort") as info:
        allocate_service(lb_local(healthCheckNodePort=30000), first, [])
    assert info.value.field == "spec.healthCheckNodePort"


def test_dropped_when_the_policy_becomes_cluster_and_new_one_after() -> None:
    first = allocate_service(lb_local(), None, [])
    cluster = allocate_service(svc(type="LoadBalancer", externalTrafficPolicy="Cluster"), first, [])
    assert "healthCheckNodePort" not in cluster["spec"]
    assert cluster["spec"]["ports"] == first["spec"]["ports"]  # node ports stay
    # Released: another service may take it; back to Local, one is allocated afresh.
    holder = allocate_service(lb_local("holder", healthCheckNodePort=30001), None, [cluster])
    assert holder["spec"]["ports"][0]["nodePort"] == 30002
    back = allocate_service(lb_local(), cluster, [holder])
    assert back["spec"]["healthCheckNodePort"] == 30003


def test_other_types_refuse_it_at_parse_naming_the_field() -> None:
    for raw in (
        svc(type="LoadBalancer", healthCheckNodePort=30500),
        svc(type="NodePort", externalTrafficPolicy="Local", healthCheckNodePort=30500),
        svc(healthCheckNodePort=30500),
    ):
        with pytest.raises(ValidationError, match="may only be set when `type` is") as info:
            parse_service(raw)
        assert info.value.field == "spec.healthCheckNodePort"
    assert (
        parse_service(svc(type="LoadBalancer", healthCheckNodePort=0)).health_check_node_port == 0
    )


@pytest.mark.parametrize("value", [80, 32768, 70000, "30500", True])
def test_out_of_range_or_not_a_number_is_refused_at_parse(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        parse_service(lb_local(healthCheckNodePort=value))
    assert info.value.field == "spec.healthCheckNodePort"


def test_equal_to_its_own_node_port_is_refused_at_parse() -> None:
    raw = lb_local(ports=[{"port": 80, "nodePort": 30500}], healthCheckNodePort=30500)
    with pytest.raises(ValidationError, match=r"spec\.ports\[0\]\.nodePort") as info:
        parse_service(raw)
    assert info.value.field == "spec.healthCheckNodePort"
