"""healthCheckNodePort of a LoadBalancer Service with externalTrafficPolicy: Local,
on a 2-node lab, with tc alone and with XDP in front (the module runs twice).

Clients are sockets in the world namespace (outside the cluster), as a cloud
load balancer's health checker: every node answers HTTP on the port with
kube-proxy's JSON, 200 where a ready backend runs and 503 where none does; the
counts follow the backends, the port closes with the service, and neither tc
nor XDP takes the port for a service frontend. Bad ports are refused by
``axoneme apply`` naming the field, and change nothing.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from axoneme.datapath.linux import xdplb
from axoneme.lab.topology import BPF_PIN_ROOT
from privileged import helpers
from privileged.conftest import lab_config, started_lab
from privileged.helpers import (
    apply,
    ax,
    http_pod,
    manifest,
    namespace,
    node_ips,
    wait_for,
    wait_pods,
    world_socket,
)

pytestmark = [pytest.mark.lab]

NS = "hc-test"
WEB = {"app": "hc"}


@pytest.fixture(scope="module", params=["disabled", "native"], ids=["tc", "xdp"])
def hc_lab(request: pytest.FixtureRequest, lab_lock: None) -> Iterator[dict[str, Any]]:
    """A 2-node lab with --nodeport-acceleration disabled (tc only) or native (XDP)."""
    with started_lab(lab_config(nodeport_acceleration=request.param)) as state:
        yield {**state, "acceleration": request.param}


def lb_service(name: str = "lb", policy: str = "Local", **spec: Any) -> dict[str, Any]:
    return helpers.lb_service(NS, name, WEB, policy, **spec)


def web(name: str, node: str, labels: dict[str, str] = WEB) -> dict[str, Any]:
    return http_pod(NS, name, node, labels)


def services() -> dict[str, dict[str, Any]]:
    items = json.loads(ax("get", "svc", "-n", NS, "-o", "json").stdout)["items"]
    return {s["metadata"]["name"]: s for s in items}


def health_check(ip: str, port: int, path: str = "/healthz") -> tuple[int, dict[str, str], Any]:
    """A load balancer's health check from the world: status, headers, JSON body."""
    s = world_socket(socket.SOCK_STREAM, timeout=2.0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        s.connect((ip, port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, json.loads(body)


def answer(ip: str, port: int) -> tuple[int, int] | None:
    """(status, localEndpoints), or None while nothing listens."""
    try:
        status, _, body = health_check(ip, port)
    except OSError:
        return None
    return status, body["localEndpoints"]


def refused(ip: str, port: int) -> bool:
    s = world_socket(socket.SOCK_STREAM, timeout=2.0)
    try:
        s.connect((ip, port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def wait_answers(ips: dict[str, str], port: int, want: dict[str, tuple[int, int]]) -> None:
    def now() -> dict[str, tuple[int, int] | None]:
        return {node: answer(ips[node], port) for node in want}

    wait_for(lambda: now() == want or None, 20, f"health checks on {port} to be {want}")


def wait_closed(ips: dict[str, str], port: int) -> None:
    def closed() -> bool:
        return all(refused(ip, port) for ip in ips.values())

    wait_for(closed, 20, f"{port} closed (connection refused) on every node")


@pytest.fixture(scope="module")
def deployed(hc_lab: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """web-1 on node1 behind a LoadBalancer with externalTrafficPolicy Local; the
    node IPs, the service's allocated ports."""
    apply(namespace(NS), web("web-1", "node1"), lb_service())
    wait_pods(NS, {"web-1"})
    spec = services()["lb"]["spec"]
    yield {
        "ips": node_ips(hc_lab),
        "health": int(spec["healthCheckNodePort"]),
        "nodePort": int(spec["ports"][0]["nodePort"]),
    }


def test_allocated_and_kept_on_reapply(deployed: dict[str, Any]) -> None:
    port = deployed["health"]
    assert 30000 <= port <= 32767 and port != deployed["nodePort"]
    out = ax("apply", "-f", "-", stdin=manifest(lb_service())).stdout
    assert "service/lb unchanged" in out, out
    assert services()["lb"]["spec"]["healthCheckNodePort"] == port


def test_node_with_the_backend_answers_200_the_other_503(deployed: dict[str, Any]) -> None:
    ips, port = deployed["ips"], deployed["health"]
    wait_answers(ips, port, {"node1": (200, 1), "node2": (503, 0)})
    status, headers, body = health_check(ips["node1"], port, "/")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert body == {
        "service": {"namespace": NS, "name": "lb"},
        "localEndpoints": 1,
        "serviceProxyHealthy": True,
    }
    status, _, body = health_check(ips["node2"], port, "/any/path")
    assert (status, body["localEndpoints"], body["service"]["name"]) == (503, 0, "lb")


def test_the_port_is_no_frontend_for_tc_or_xdp(
    deployed: dict[str, Any], hc_lab: dict[str, Any]
) -> None:
    """The listener answered from outside, so tc and XDP passed its packets; the
    maps hold no entry on the port, and XDP counted none of them as service traffic."""
    ips, port = deployed["ips"], deployed["health"]
    wait_answers(ips, port, {"node1": (200, 1)})
    for node in ("node1", "node2"):
        listing = ax("service", "list", "--node", node).stdout
        assert f":{deployed['nodePort']}" in listing, listing  # the service's own NodePort
        assert f":{port}" not in listing, listing
    accelerated = hc_lab["acceleration"] == "native"
    before = xdplb.stats(BPF_PIN_ROOT / "node1") if accelerated else None
    for _ in range(10):
        assert answer(ips["node1"], port) == (200, 1)
    if accelerated:
        assert xdplb.stats(BPF_PIN_ROOT / "node1") == before


def test_status_verbose_shows_the_port(deployed: dict[str, Any]) -> None:
    port = deployed["health"]
    wait_answers(deployed["ips"], port, {"node1": (200, 1), "node2": (503, 0)})
    out = ax("status", "--verbose", "--node", "node2").stdout
    assert "Health Check NodePort:  Enabled" in out, out
    assert f"{port:<6} {NS}/lb: 0 local endpoints (HTTP 503)" in out, out


def test_counts_follow_the_backends(deployed: dict[str, Any]) -> None:
    ips, port = deployed["ips"], deployed["health"]
    apply(web("web-2", "node2"))
    wait_pods(NS, {"web-2"})
    wait_answers(ips, port, {"node1": (200, 1), "node2": (200, 1)})
    apply(web("web-3", "node2"))
    wait_pods(NS, {"web-3"})
    wait_answers(ips, port, {"node1": (200, 1), "node2": (200, 2)})
    # web-1 leaves the service (its label no longer matches): node1 has none.
    apply(web("web-1", "node1", labels={"app": "elsewhere"}))
    wait_answers(ips, port, {"node1": (503, 0), "node2": (200, 2)})
    apply(web("web-1", "node1"))
    wait_answers(ips, port, {"node1": (200, 1), "node2": (200, 2)})


@pytest.mark.parametrize(
    ("spec", "field", "why"),
    [
        ({"healthCheckNodePort": 40000}, "spec.healthCheckNodePort", "not in the node port range"),
        ({"healthCheckNodePort": "NODEPORT"}, "spec.healthCheckNodePort", "already allocated"),
        ({"healthCheckNodePort": "HEALTH"}, "spec.healthCheckNodePort", "already allocated"),
        ({"healthCheckNodePort": 31999, "externalTrafficPolicy": "Cluster"},
         "spec.healthCheckNodePort", "may only be set when `type` is 'LoadBalancer'"),
    ],
)  # fmt: skip
def test_bad_ports_are_refused_naming_the_field_and_change_nothing(
    deployed: dict[str, Any], spec: dict[str, Any], field: str, why: str
) -> None:
    taken = {"NODEPORT": deployed["nodePort"], "HEALTH": deployed["health"]}
    spec = {k: taken.get(v, v) if isinstance(v, str) else v for k, v in spec.items()}
    before = services()
    # A good Service in the same manifest is not applied either: all or nothing.
    fine = lb_service("fine")
    out = ax("apply", "-f", "-", stdin=manifest(fine, lb_service("bad", **spec)), check=False)
    assert out.returncode != 0
    assert field in out.stderr and why in out.stderr, out.stderr
    assert services() == before


def test_immutable_once_allocated(deployed: dict[str, Any]) -> None:
    before = services()
    other = 32000 if deployed["health"] != 32000 else 32001
    out = ax("apply", "-f", "-", stdin=manifest(lb_service(healthCheckNodePort=other)), check=False)
    assert out.returncode != 0
    assert "spec.healthCheckNodePort" in out.stderr and "immutable" in out.stderr, out.stderr
    assert services() == before


def test_cluster_policy_drops_it_and_delete_closes_it(deployed: dict[str, Any]) -> None:
    ips, port = deployed["ips"], deployed["health"]
    wait_answers(ips, port, {"node1": (200, 1)})
    # externalTrafficPolicy Cluster: no health check; the port closes on every node.
    apply(lb_service(policy="Cluster"))
    assert "healthCheckNodePort" not in services()["lb"]["spec"]
    wait_closed(ips, port)
    # Back to Local: a port again (the next free one, maybe the same), answered.
    apply(lb_service())
    port = int(services()["lb"]["spec"]["healthCheckNodePort"])
    wait_answers(ips, port, {"node1": (200, 1), "node2": (200, 2)})
    # The service deleted: the port is closed (connection refused) on both nodes.
    ax("delete", "-f", "-", stdin=manifest(lb_service()))
    wait_closed(ips, port)
