"""The KubeProxyReplacement block of ``axoneme status --verbose``: health-check node ports."""

from __future__ import annotations

from axoneme.agent.loadbalancer import report
from axoneme.cli.services import kpr_lines
from axoneme.loadbalancer.config import LBAgentConfig


def test_verbose_status_lists_each_health_check_node_port() -> None:
    kpr = report(LBAgentConfig(), None, node_port="Enabled") | {
        "healthCheckNodePort": "Enabled",
        "healthCheckNodePorts": [
            {"port": 30001, "service": "demo/web", "localEndpoints": 1, "status": 200,
             "error": ""},
            {"port": 30002, "service": "demo/db", "localEndpoints": 0, "status": 503,
             "error": ""},
            {"port": 30003, "service": "demo/x", "localEndpoints": 2, "status": 0,
             "error": "[Errno 98] Address already in use"},
        ],
    }  # fmt: skip
    lines = kpr_lines(kpr, verbose=True)
    at = lines.index("  Health Check NodePort:  Enabled")
    assert lines[at + 1 :] == [
        "    30001  demo/web: 1 local endpoint (HTTP 200)",
        "    30002  demo/db: 0 local endpoints (HTTP 503)",
        "    30003  demo/x: 2 local endpoints (not listening: [Errno 98] Address already in use)",
    ]
    assert not any("Health Check" in line for line in kpr_lines(kpr, verbose=False))


def test_disabled_without_the_server() -> None:
    lines = kpr_lines(report(LBAgentConfig(), None), verbose=True)
    assert lines[-1] == "  Health Check NodePort:  Disabled"
