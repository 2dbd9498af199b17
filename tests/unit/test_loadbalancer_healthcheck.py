"""Which health-check node ports a node serves and what each answers (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from axoneme.k8s.service import EndpointSlice, Service, parse_endpointslice, parse_service
from axoneme.loadbalancer.healthcheck import HealthCheck, health_checks, response


def service(name: str = "web", hc: int | None = 31000, **spec: Any) -> Service:
    spec = {
        "type": "LoadBalancer",
        "externalTrafficPolicy": "Local",
        "healthCheckNodePort": hc,
        "selector": {"app": name},
        "ports": [
            {"name": "http", "port": 80, "nodePort": 30080},
            {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
        ],
        **spec,
    }
    raw = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "demo"}}
    return parse_service(raw | {"spec": {k: v for k, v in spec.items() if v is not None}})


def ep(ip: str, node: str, **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node, "conditions": conditions}


def slice_(
    svc: str, *endpoints: dict[str, Any], port: str = "http", name: str = ""
) -> EndpointSlice:
    return parse_endpointslice(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name or f"{svc}-{port}",
                "namespace": "demo",
                "labels": {"kubernetes.io/service-name": svc},
            },
            "addressType": "IPv4",
            "endpoints": list(endpoints),
            "ports": [{"name": port, "port": 8080, "protocol": "UDP" if port == "dns" else "TCP"}],
        }
    )


def checks(
    services: list[Service], slices: list[EndpointSlice], node: str
) -> dict[int, HealthCheck]:
    def slices_of(ref: str) -> Iterable[EndpointSlice]:
        return [s for s in slices if f"{s.namespace}/{s.service}" == ref]

    return health_checks(services, slices_of, node)


def test_counts_distinct_ready_local_addresses_over_the_service_ports() -> None:
    slices = [
        slice_(
            "web",
            ep("10.42.1.2", "node1"),
            ep("10.42.1.3", "node1", ready=False),  # not ready
            ep("10.42.1.4", "node1", ready=False, serving=True, terminating=True),  # leaving
            ep("10.42.2.2", "node2"),  # another node's
        ),
        # The same pod behind the UDP port too: one endpoint, not two (kube-proxy).
        slice_("web", ep("10.42.1.2", "node1"), ep("10.42.1.5", "node1"), port="dns"),
        # A port the service does not have: not its backends.
        slice_("web", ep("10.42.1.9", "node1"), port="metrics"),
        slice_("other", ep("10.42.1.7", "node1")),
    ]
    got = checks([service()], slices, "node1")
    assert got == {31000: HealthCheck(31000, "demo", "web", 2)}
    assert checks([service()], slices, "node2")[31000].local_endpoints == 1
    assert checks([service()], slices, "node3")[31000].local_endpoints == 0


def test_only_services_that_have_one() -> None:
    cluster = service("c", hc=None, externalTrafficPolicy="Cluster")
    node_port = service("np", hc=None, type="NodePort")
    assert cluster.health_check_node_port == node_port.health_check_node_port == 0
    # Not yet allocated (stored before apply gave it one): nothing to serve.
    unallocated = service("u", hc=None)
    assert checks([cluster, node_port, unallocated, service("web")], [], "node1").keys() == {31000}


def test_two_services_on_one_port_first_by_name_wins() -> None:
    got = checks([service("zeta"), service("alpha")], [], "node1")
    assert got[31000].name == "alpha"


def test_response_is_kube_proxys() -> None:
    status, headers, body = response(HealthCheck(31000, "default", "wp-nginx-service", 1))
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Load-Balancing-Endpoint-Weight"] == "1"
    assert json.loads(body) == {
        "service": {"namespace": "default", "name": "wp-nginx-service"},
        "localEndpoints": 1,
        "serviceProxyHealthy": True,
    }
    # Byte for byte: tab-indented, no final newline (kube-proxy's is 127 bytes here).
    assert body.startswith(b'{\n\t"service": {\n\t\t"namespace": "default",') and len(body) == 127


def test_no_local_endpoint_or_unhealthy_proxy_is_503() -> None:
    status, headers, body = response(HealthCheck(31000, "demo", "web", 0))
    assert (status, headers["X-Load-Balancing-Endpoint-Weight"]) == (503, "0")
    assert json.loads(body)["localEndpoints"] == 0
    status, _, body = response(HealthCheck(31000, "demo", "web", 3), proxy_healthy=False)
    assert status == 503
    assert json.loads(body)["serviceProxyHealthy"] is False
