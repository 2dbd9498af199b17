"""NodePort DSR (``--bpf-lb-mode dsr``) on a 2-node lab, clients in the world namespace.

A backend on another node gets the request with the client's address kept
and the frontend in an IPv4 option; its node records the frontend, removes
the option, and the backend's replies leave that node straight to the client
with the frontend (node1's address and the NodePort) as their source. Node1
never sees the replies: it holds no reverse entry for the flow.

The lab also runs XDP acceleration, as Cilium is usually deployed with DSR:
XDP leaves DSR flows to tc (which inserts the option) and still serves
backends on the dialled node.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from axoneme.datapath.linux import bpfsys
from axoneme.lab.topology import BPF_PIN_ROOT, WORLD_IP
from privileged.conftest import lab_config, started_lab
from privileged.helpers import apply, ax, node_port_service, pods, world_http, world_udp
from privileged.test_privileged_nodeport_xdp import deploy_web, stats, wait_served

pytestmark = [pytest.mark.lab]

NS = "dsr-test"


@pytest.fixture(scope="module")
def dsr_lab(lab_lock: None) -> Iterator[dict[str, Any]]:
    with started_lab(lab_config(lb_mode="dsr", nodeport_acceleration="native")) as state:
        yield state


@pytest.fixture(scope="module")
def node_ip(dsr_lab: dict[str, Any]) -> dict[str, str]:
    return deploy_web(NS, dsr_lab)


def nat_entries(node: str) -> list[bytes]:
    with bpfsys.BpfMap.open_pinned(BPF_PIN_ROOT / node / "axo_lb_nat") as m:
        return [k for k, _ in m.items()]


def test_status_reports_dsr(node_ip: dict[str, str]) -> None:
    out = ax("status", "--verbose", "--node", "node1").stdout
    assert "DSR:                    Enabled" in out, out


def test_remote_backend_sees_the_client_and_replies_directly(node_ip: dict[str, str]) -> None:
    """Services in a DSR namespace are served in DSR: the test_privileged_nodeport_xdp
    helpers are reused, with a backend only on node2 dialled on node1."""
    apply(node_port_service(NS, "remote", {"pod": "web-2"}, 30480, 30453))
    wait_served(node_ip["node1"], 30480)
    before = stats("node1")
    for _ in range(10):
        answer = world_http(node_ip["node1"], 30480)
        assert answer["name"] == "web-2", answer
        # The backend sees the client, not node1 (that would be SNAT).
        assert answer["client"].rsplit(":", 1)[0] == WORLD_IP, answer
    # UDP: the reply's source is the frontend, though node2 sent it.
    assert world_udp(node_ip["node1"], 30453, b"dsr-udp") == (b"dsr-udp", (node_ip["node1"], 30453))
    after = stats("node1")
    # Every request packet went to tc for its option; XDP forwarded none of them.
    assert after.to_tc - before.to_tc >= 10 * 3, (before, after)
    assert after.forwarded == before.forwarded, (before, after)
    # SNAT would leave node1 a reverse entry keyed by web-2's replies to node1; DSR
    # leaves none there, and node2 one keyed by web-2's replies to the client.
    web2 = socket.inet_aton(pods(NS)["web-2"]["status"]["podIP"])
    http = (8080).to_bytes(2, "big")

    def replies_to(node: str, dst: str) -> list[bytes]:
        to = socket.inet_aton(dst)
        return [k for k in nat_entries(node) if k[0:4] == web2 and k[4:8] == to and k[8:10] == http]

    assert not replies_to("node1", node_ip["node1"])
    assert replies_to("node2", WORLD_IP)


def test_local_backend_still_served(node_ip: dict[str, str]) -> None:
    apply(node_port_service(NS, "local", {"pod": "web-1"}, 30580, 30553))
    wait_served(node_ip["node1"], 30580)
    before = stats("node1")
    answer = world_http(node_ip["node1"], 30580)
    assert (answer["name"], answer["client"].rsplit(":", 1)[0]) == ("web-1", WORLD_IP)
    assert stats("node1").to_stack > before.to_stack  # translated in XDP
