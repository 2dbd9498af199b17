"""``--service-no-backend-response drop``: a 2-node lab started with it (and NodePort
acceleration), so the agents themselves program the mode. A frontend without
backends answers nothing: the world's TCP connect and UDP request time out, XDP
counts the drops (it no longer hands them to tc for an ICMP answer) and observe
shows them as SERVICE_BACKEND_NOT_FOUND. The reject default is covered by
test_privileged_nodeport_reject.py and test_privileged_nodeport_xdp.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from axoneme.datapath.linux import xdplb
from axoneme.lab.topology import BPF_PIN_ROOT, WORLD_IP
from privileged.conftest import lab_config, started_lab
from privileged.helpers import (
    apply,
    ax,
    namespace,
    node_ips,
    node_port_service,
    observed_flows,
    wait_for,
    world_http,
    world_udp,
)

pytestmark = [pytest.mark.lab]

NS = "np-drop"


@pytest.fixture(scope="module")
def node_ip(lab_lock: None) -> Iterator[dict[str, str]]:
    config = lab_config(nodeport_acceleration="native", no_backend_response="drop")
    with started_lab(config) as state:
        apply(namespace(NS), node_port_service(NS, "empty", {"pod": "none"}, 30480, 30453))
        for node in ("node1", "node2"):
            wait_for(
                lambda n=node: "30480" in ax("service", "list", "--node", n).stdout,
                20,
                f"frontend 30480 on {node}",
            )
        yield node_ips(state)


def drops(node: str) -> list[dict[str, Any]]:
    return observed_flows("--node", node, "--to-port", "30480",
                          "--drop-reason-desc", "SERVICE_BACKEND_NOT_FOUND", last=1000)  # fmt: skip


def test_status_shows_drop(node_ip: dict[str, str]) -> None:
    for node in node_ip:
        out = ax("status", "--verbose", "--node", node).stdout
        assert "No Backend Response:    Drop" in out, out


def test_no_backend_times_out_and_xdp_drops(node_ip: dict[str, str]) -> None:
    for node, ip in node_ip.items():
        before = xdplb.stats(BPF_PIN_ROOT / node)
        with pytest.raises(TimeoutError):
            world_http(ip, 30480, timeout=1.5)
        with pytest.raises(TimeoutError):
            world_udp(ip, 30453, b"anyone?", timeout=1.0)
        after = xdplb.stats(BPF_PIN_ROOT / node)
        assert after.dropped - before.dropped >= 2, (node, before, after)
        assert after.to_tc == before.to_tc, (node, before, after)
        flows = wait_for(lambda n=node: drops(n), 10, f"the drop events of {node}")
        assert flows[-1]["IP"]["source"] == WORLD_IP, flows[-1]
