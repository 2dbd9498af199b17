"""The EndpointSlice controller's computation."""

from __future__ import annotations

from typing import Any

from axoneme.k8s.objects import ContainerPort, Pod
from axoneme.k8s.service import parse_endpointslice, parse_service
from axoneme.loadbalancer.endpointslices import desired_slices, is_managed


def service(**spec: Any) -> Any:
    return parse_service(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec},
        }
    )


def pod(name: str, ip: str, labels: dict[str, str] | None = None, **kw: Any) -> Pod:
    return Pod(
        "demo",
        name,
        labels if labels is not None else {"app": "web"},
        node_name="node1",
        phase=kw.pop("phase", "Running"),
        pod_ip=ip,
        **kw,
    )


def test_selected_running_pods_become_ready_endpoints() -> None:
    pods = [
        pod("a", "10.42.1.2"),
        pod("b", "10.42.1.3", {"app": "other"}),
        pod("c", ""),  # no IP yet
        pod("d", "10.42.1.4", phase="Pending"),
        Pod("elsewhere", "e", {"app": "web"}, pod_ip="10.42.1.9", phase="Running"),
    ]
    slices = desired_slices(service(ports=[{"port": 80, "targetPort": 8080}]), pods)
    assert len(slices) == 1
    s = parse_endpointslice(slices[0])  # what the controller writes is valid
    assert is_managed(slices[0])
    assert s.service == "web"
    assert [(e.address, e.ready, e.serving) for e in s.endpoints] == [
        ("10.42.1.2", True, True),
        ("10.42.1.4", False, False),
    ]
    assert [(p.port, p.protocol) for p in s.ports] == [(8080, "TCP")]
    assert s.endpoints[0].target_pod == "demo/a"


def test_named_target_ports_group_pods_by_resolved_port() -> None:
    svc = service(ports=[{"port": 80, "targetPort": "http"}])
    pods = [
        pod("a", "10.42.1.2", ports=(ContainerPort(8080, "TCP", "http"),)),
        pod("b", "10.42.1.3", ports=(ContainerPort(9090, "TCP", "http"),)),
        pod("c", "10.42.1.4", ports=(ContainerPort(8080, "TCP", "http"),)),
    ]
    slices = [parse_endpointslice(s) for s in desired_slices(svc, pods)]
    by_port = {s.ports[0].port if s.ports else 0: [e.address for e in s.endpoints] for s in slices}
    assert by_port == {8080: ["10.42.1.2", "10.42.1.4"], 9090: ["10.42.1.3"]}
    assert len({s.name for s in slices}) == 2


def test_terminating_pods_stay_serving_but_not_ready() -> None:
    slices = desired_slices(service(), [pod("a", "10.42.1.2")], frozenset({"demo/a"}))
    e = parse_endpointslice(slices[0]).endpoints[0]
    assert (e.ready, e.serving, e.terminating) == (False, True, True)


def test_selectorless_service_gets_no_managed_slices() -> None:
    svc = service()
    svc = parse_service(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "ext", "namespace": "demo"},
            "spec": {"ports": [{"port": 80}]},
        }
    )
    assert desired_slices(svc, [pod("a", "10.42.1.2", {})]) == []
