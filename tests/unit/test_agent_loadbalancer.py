"""The service component's pure parts: flow service names, the status report."""

from __future__ import annotations

from axoneme.agent.loadbalancer import report, service_names
from axoneme.loadbalancer.config import LBAgentConfig
from axoneme.loadbalancer.state import BackendAddr, Frontend


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
