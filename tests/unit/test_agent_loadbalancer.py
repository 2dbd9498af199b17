"""The service component's pure parts: flow service names, the status report, and
which services a watch event marks for recomputing."""

from __future__ import annotations

import asyncio
from typing import Any

from axoneme.agent.loadbalancer import ServiceNames, ServiceSync, report, service_names
from axoneme.loadbalancer.config import LBAgentConfig
from axoneme.loadbalancer.state import BackendAddr, Frontend
from axoneme.store.types import Key, WatchEvent


def test_service_names_cover_frontends_and_backends() -> None:
    b = (BackendAddr("10.42.1.2", 8080, "TCP"),)
    fes = [
        Frontend("10.96.0.9", 80, "TCP", "ClusterIP", "demo/web", "", b, b),
        Frontend("10.96.0.8", 80, "TCP", "ClusterIP", "demo/alias", "", b, b),
    ]
    names = service_names(fes)
    assert names[("10.96.0.9", 80, 6)] == "demo/web"
    assert names[("10.42.1.2", 8080, 6)] == "demo/alias"  # first by name
    assert ("10.42.1.2", 8080, 17) not in names


def test_report_without_socket_lb() -> None:
    r = report(LBAgentConfig(), None, "off")
    assert (r["status"], r["socketLB"], r["nodePort"], r["xdpAcceleration"]) == (
        "False",
        "Disabled",
        "Disabled",
        "Disabled",
    )


def raw_slice(name: str, svc: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "demo",
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.42.1.2"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 8080}],
    }


def test_slice_events_mark_the_services_they_leave_and_join() -> None:
    sync = ServiceSync()
    on_sync, on_event = sync.handlers("EndpointSlice")
    asyncio.run(on_sync([raw_slice("s1", "a")]))
    assert sync.relisted and list(sync.slices_of["demo/a"]) == [Key("EndpointSlice", "demo", "s1")]
    sync.dirty.clear()
    asyncio.run(on_event(WatchEvent("MODIFIED", raw_slice("s1", "b"), 2)))
    assert sync.dirty == {"demo/a", "demo/b"}
    assert not sync.slices_of["demo/a"] and len(sync.slices_of["demo/b"]) == 1
    sync.dirty.clear()
    asyncio.run(on_event(WatchEvent("DELETED", raw_slice("s1", "b"), 3)))
    assert sync.dirty == {"demo/b"} and not sync.slices_of["demo/b"] and not sync.slices


def test_service_names_are_rebuilt_after_a_change_only() -> None:
    b = (BackendAddr("10.42.1.2", 8080, "TCP"),)
    fes = [Frontend("10.96.0.9", 80, "TCP", "ClusterIP", "demo/web", "", b, b)]
    calls = []

    def frontends() -> list[Frontend]:
        calls.append(1)
        return list(fes)

    names = ServiceNames(frontends)
    assert names.lookup("10.96.0.9", 80, 6) == "demo/web"
    assert names.lookup("10.42.1.2", 8080, 6) == "demo/web" and len(calls) == 1
    fes.clear()
    assert names.lookup("10.96.0.9", 80, 6) == "demo/web"  # no change announced yet
    names.changed()
    assert names.lookup("10.96.0.9", 80, 6) == "" and len(calls) == 2
