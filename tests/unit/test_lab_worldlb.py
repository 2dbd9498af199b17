"""The world router's health-checked routes: which services, which next hops (pure),
node health thresholds, and the status lines from the state file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from axoneme.k8s.service import Service, parse_service
from axoneme.lab import worldlb
from axoneme.lab.worldlb import NodeHealth, Target, desired_routes, targets

NODES = {"node1": "172.30.0.1", "node2": "172.30.0.2", "node3": "172.30.0.3"}


def service(
    name: str, ingress: list[str], policy: str = "Local", hc: int | None = 31000, **spec: Any
) -> Service:
    spec = {
        "type": "LoadBalancer",
        "externalTrafficPolicy": policy,
        "healthCheckNodePort": hc if policy == "Local" else None,
        "selector": {"app": name},
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}],
        **spec,
    }
    raw = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {k: v for k, v in spec.items() if v is not None},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}},
    }
    return parse_service(raw)


def test_targets_are_etp_local_load_balancers_with_a_port_and_pool_addresses() -> None:
    got = targets(
        [
            service("local", ["198.18.1.5"], hc=31234),
            service("cluster", ["198.18.1.6"], policy="Cluster"),
            service("no-port-yet", ["198.18.1.7"], hc=None),
            service("no-address-yet", []),
            # An address outside the pool (a requested loadBalancerIP) is not routed.
            service("outside", ["10.1.2.3", "198.18.1.8"], hc=31235),
            service("only-outside", ["192.0.2.9"], hc=31236),
            service(
                "nodeport", [], hc=None, type="NodePort", ports=[{"port": 80, "nodePort": 30081}]
            ),
        ]
    )
    assert got == [
        Target("demo/local", 31234, ("198.18.1.5",)),
        Target("demo/outside", 31235, ("198.18.1.8",)),
    ]


def test_desired_routes_go_to_the_healthy_nodes_only() -> None:
    wanted = [
        Target("demo/a", 31000, ("198.18.1.5",)),
        Target("demo/b", 31001, ("198.18.1.6", "198.18.1.7")),
        Target("demo/none", 31002, ("198.18.1.8",)),
        Target("demo/unchecked", 31003, ("198.18.1.9",)),
    ]
    healthy = {
        ("demo/a", 31000, "node1"): False,
        ("demo/a", 31000, "node2"): True,
        ("demo/a", 31000, "node3"): False,
        ("demo/b", 31001, "node1"): True,
        ("demo/b", 31001, "node2"): False,
        ("demo/b", 31001, "node3"): True,
        ("demo/none", 31002, "node1"): False,
        ("demo/none", 31002, "node2"): False,
        # demo/a's answer on another port says nothing about demo/a on 31000.
        ("demo/a", 31999, "node1"): True,
    }
    assert desired_routes(wanted, healthy, NODES) == {
        "198.18.1.5": ("172.30.0.2",),
        "198.18.1.6": ("172.30.0.1", "172.30.0.3"),
        "198.18.1.7": ("172.30.0.1", "172.30.0.3"),
        # demo/none and demo/unchecked: no /32, the pool route carries them.
    }


def test_desired_routes_never_leave_the_pool() -> None:
    wanted = [Target("demo/a", 31000, ("198.18.1.5", "10.0.0.1"))]
    healthy = {("demo/a", 31000, "node1"): True}
    assert desired_routes(wanted, healthy, NODES) == {"198.18.1.5": ("172.30.0.1",)}
    assert desired_routes(wanted, healthy, NODES, pool="198.18.2.0/24") == {}


def test_desired_routes_of_an_address_two_services_claim_take_the_union() -> None:
    wanted = [Target("demo/a", 31000, ("198.18.1.5",)), Target("demo/b", 31001, ("198.18.1.5",))]
    healthy = {("demo/a", 31000, "node2"): True, ("demo/b", 31001, "node1"): True}
    assert desired_routes(wanted, healthy, NODES) == {"198.18.1.5": ("172.30.0.1", "172.30.0.2")}


def test_node_health_first_result_decides_then_two_in_a_row_flip() -> None:
    h = NodeHealth(threshold=2)
    assert h.healthy is None
    assert h.observe(True) is True
    assert h.observe(False) is True  # one failure is not enough
    assert h.observe(True) is True  # and a success resets the count
    assert h.observe(False) is True
    assert h.observe(False) is False  # two in a row
    assert h.observe(True) is False
    assert h.observe(True) is True
    first_down = NodeHealth(threshold=2)
    assert first_down.observe(False) is False


def test_apply_routes_refuses_addresses_outside_the_pool() -> None:
    with pytest.raises(ValueError, match="outside"):
        worldlb.apply_routes({"10.0.0.1": ("172.30.0.1",)}, netns="/nonexistent")


def test_status_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "world-lb.json"
    monkeypatch.setattr(worldlb, "state_file", lambda: path)
    assert worldlb.status_lines() == ["world LB: not running"]
    state: dict[str, Any] = {"interval": 1.0, "services": [], "routes": {}}
    path.write_text(json.dumps(state))
    assert worldlb.status_lines() == [
        "world LB: no LoadBalancer service with externalTrafficPolicy Local"
    ]
    state["services"] = [
        {
            "service": "demo/a",
            "healthCheckNodePort": 31234,
            "ingress": ["198.18.1.5"],
            "healthy": {"node1": False, "node2": True},
        },
        {
            "service": "demo/b",
            "healthCheckNodePort": 31235,
            "ingress": ["198.18.1.6"],
            "healthy": {"node1": False, "node2": False},
        },
    ]
    state["routes"] = {"198.18.1.5": ["node2"]}
    path.write_text(json.dumps(state))
    assert worldlb.status_lines() == [
        "world LB: 198.18.1.5 -> node2 (demo/a, health check 31234)",
        "world LB: 198.18.1.6 -> pool route, no healthy node (demo/b, health check 31235)",
    ]
