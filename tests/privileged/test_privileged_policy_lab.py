"""Policy in the lab through the CLI: trace, endpoint/bpf views, monitor, bad input,
an agent killed under traffic, and the enforcement and audit modes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from axoneme.api.client import AgentClient
from axoneme.kit.netns import socket_in
from axoneme.lab import control
from axoneme.lab.topology import LabConfig, pod_netns
from privileged.helpers import ax, manifest, namespace, pod_manifest, wait_for, wait_pods

pytestmark = [pytest.mark.lab, pytest.mark.slow]

WEB_POLICY = {
    "apiVersion": "cilium.io/v2",
    "kind": "CiliumNetworkPolicy",
    "metadata": {"name": "web-from-client", "namespace": "pol"},
    "spec": {
        "endpointSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {
                "fromEndpoints": [{"matchLabels": {"app": "client"}}],
                "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}],
            }
        ],
    },
}


def import_policy(*objects: dict[str, Any]) -> int:
    out = ax("policy", "import", "-f", "-", stdin=manifest(*objects)).stdout
    revision = int(out.strip().splitlines()[-1].split()[-1])
    ax("policy", "wait", str(revision), "--timeout", "30")
    return revision


def deploy_pol() -> dict[str, dict[str, Any]]:
    ax(
        "apply",
        "-f",
        "-",
        stdin=manifest(
            namespace("pol"),
            pod_manifest("pol", "web", "node2", {"app": "web"}, [(80, "TCP"), (81, "TCP")]),
            pod_manifest("pol", "client", "node1", {"app": "client"}, []),
            pod_manifest("pol", "other", "node1", {"app": "other"}, []),
        ),
    )
    return wait_pods("pol", {"web", "client", "other"})


def monitor_during(args: list[str], action: Any) -> str:
    """Run ``axoneme monitor ARGS`` while ``action()`` runs; its output."""
    mon = subprocess.Popen(
        [sys.executable, "-m", "axoneme.cli.main", "monitor", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # subscribed before the traffic starts
        action()
        out, _ = mon.communicate(timeout=20)
    finally:
        if mon.poll() is None:
            mon.kill()
            mon.wait()
    return out


def probe(src: str, dst: str, timeout: float = 1.0) -> str:
    out = ax("probe", "--timeout", str(timeout), src, dst, check=False).stdout
    return out.split()[0]


@pytest.fixture(scope="module")
def pol(lab: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pods = deploy_pol()
    import_policy(WEB_POLICY)
    return pods


def test_policy_enforced_and_explained(pol: dict[str, dict[str, Any]]) -> None:
    assert probe("pol/client", "pol/web:80/TCP") == "reachable"
    assert probe("pol/client", "pol/web:81/TCP") == "timeout"
    assert probe("pol/other", "pol/web:80/TCP") == "timeout"
    # The node can still reach its pods (allow-localhost), other nodes cannot.
    assert probe("node:node2", "pol/web:80/TCP") == "reachable"
    assert probe("node:node1", "pol/web:80/TCP") == "timeout"

    allowed = ax(
        "policy", "trace", "--src", "pol/client", "--dst", "pol/web", "--dport", "80/TCP"
    ).stdout
    assert "Final verdict: ALLOWED" in allowed
    assert "CiliumNetworkPolicy/pol/web-from-client" in allowed
    denied = ax(
        "policy", "trace", "--src", "pol/other", "--dst", "pol/web", "--dport", "80/TCP"
    ).stdout
    assert "Final verdict: DENIED" in denied

    listing = ax("endpoint", "list").stdout
    web_line = next(line for line in listing.splitlines() if "k8s:app=web" in line)
    assert "Enabled" in web_line.split()[2]
    web_ep = json.loads(
        json.dumps(
            AgentClient(Path("/run/axoneme-lab/nodes/node2/agent.sock")).get("/v1/endpoints")
        )
    )
    ep_id = next(e["id"] for e in web_ep if e["pod"] == "web")
    client_identity = next(
        e["identity"]
        for e in AgentClient(Path("/run/axoneme-lab/nodes/node1/agent.sock")).get("/v1/endpoints")
        if e["pod"] == "client"
    )
    dump = ax("bpf", "policy", "get", str(ep_id), "--node", "node2").stdout
    assert f"ingress     {client_identity}" in dump and "TCP     80     allow" in dump
    ipcache = ax("bpf", "ipcache", "list", "--node", "node1").stdout
    assert f"{pol['web']['status']['podIP']}/32" in ipcache
    assert "identity=1 " in ipcache and "identity=6 " in ipcache
    ct = ax("bpf", "ct", "list", "--node", "node2").stdout
    assert f"-> {pol['web']['status']['podIP']}:80" in ct


def test_monitor_shows_the_drop_with_its_reason(pol: dict[str, dict[str, Any]]) -> None:
    def denied() -> None:
        assert probe("pol/other", "pol/web:81/TCP") == "timeout"

    out = monitor_during(["--node", "node2", "-t", "drop", "-n", "1", "--duration", "15"], denied)
    assert "drop (Policy denied)" in out, out
    assert f"-> {pol['web']['status']['podIP']}:81 tcp SYN" in out


def test_bad_policy_is_rejected_and_changes_nothing(pol: dict[str, dict[str, Any]]) -> None:
    before = (
        ax("bpf", "ipcache", "list").stdout,
        ax("bpf", "ct", "list").stdout and "",
        AgentClient(Path("/run/axoneme-lab/nodes/node2/agent.sock")).get("/v1/policy")[
            "realizedRevision"
        ],
    )
    policy_dump = ax("bpf", "policy", "get", "1", "--node", "node2").stdout
    bad = json.loads(json.dumps(WEB_POLICY))
    bad["metadata"]["name"] = "bad"
    bad["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["port"] = "99999"
    proc = ax("policy", "import", "-f", "-", stdin=manifest(bad), check=False)
    assert proc.returncode == 1
    assert "spec.ingress[0].toPorts[0].ports[0].port" in proc.stderr
    bad["spec"]["ingress"][0]["fromEntities"] = ["everything"]
    proc = ax("apply", "-f", "-", stdin=manifest(bad), check=False)
    assert proc.returncode == 1 and "fromEntities" in proc.stderr
    assert "bad" not in ax("policy", "get").stdout
    after = (
        ax("bpf", "ipcache", "list").stdout,
        "",
        AgentClient(Path("/run/axoneme-lab/nodes/node2/agent.sock")).get("/v1/policy")[
            "realizedRevision"
        ],
    )
    assert after == before
    assert ax("bpf", "policy", "get", "1", "--node", "node2").stdout == policy_dump


def test_agent_kill9_under_traffic_keeps_enforcing(pol: dict[str, dict[str, Any]]) -> None:
    client = pol["client"]["metadata"]
    path = f"/run/netns/{pod_netns('pol', 'client', client['uid'])}"
    conn = socket_in(path, socket.AF_INET, socket.SOCK_STREAM)
    conn.setblocking(True)
    conn.settimeout(5)
    conn.connect((pol["web"]["status"]["podIP"], 80))
    try:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in conn.recv(4096)
        state = control.require_state()
        node2 = next(n for n in state["nodes"] if n["name"] == "node2")
        os.kill(node2["agentPid"], signal.SIGKILL)
        # Agent down: the allowed connection works, denied flows stay denied.
        conn.sendall(b"GET /during HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"/during" in conn.recv(4096)
        assert probe("pol/other", "pol/web:80/TCP") == "timeout"

        def back() -> bool:
            nodes = (control.read_state() or {}).get("nodes", [])
            n = next(x for x in nodes if x["name"] == "node2")
            if n["agentPid"] == node2["agentPid"]:
                return False
            try:
                return bool(AgentClient(Path(n["socket"]), timeout=2).get("/v1/policy")["synced"])
            except Exception:
                return False

        wait_for(back, 30, "the agent to come back")
        conn.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"/after" in conn.recv(4096)
    finally:
        conn.close()
    assert probe("pol/other", "pol/web:80/TCP") == "timeout"
    assert probe("pol/client", "pol/web:80/TCP") == "reachable"
    log = Path("/run/axoneme-lab/nodes/node2/agent.log").read_text()
    assert "datapath adopted" in log  # the restarted agent reused the pinned programs


def test_established_connection_survives_a_policy_change(pol: dict[str, dict[str, Any]]) -> None:
    client = pol["client"]["metadata"]
    path = f"/run/netns/{pod_netns('pol', 'client', client['uid'])}"
    conn = socket_in(path, socket.AF_INET, socket.SOCK_STREAM)
    conn.setblocking(True)
    conn.settimeout(5)
    conn.connect((pol["web"]["status"]["podIP"], 80))
    try:
        deny = json.loads(json.dumps(WEB_POLICY))
        deny["metadata"]["name"] = "deny-client"
        deny["spec"] = {
            "endpointSelector": {"matchLabels": {"app": "web"}},
            "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}],
        }
        import_policy(deny)
        # As in Cilium: conntrack keeps the established connection; new ones are denied.
        conn.sendall(b"GET /still HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"/still" in conn.recv(4096)
        assert probe("pol/client", "pol/web:80/TCP") == "timeout"
    finally:
        conn.close()
        out = ax("policy", "delete", "deny-client", "-n", "pol").stdout
        ax("policy", "wait", out.strip().splitlines()[-1].split()[-1])
    assert probe("pol/client", "pol/web:80/TCP") == "reachable"


def _one_node_lab(**kw: Any) -> None:
    control.down(grace=5.0)
    control.up(LabConfig(nodes=1, **kw))
    ax(
        "apply",
        "-f",
        "-",
        stdin=manifest(
            namespace("m"),
            pod_manifest("m", "a", "node1", {"app": "a"}, [(80, "TCP")]),
            pod_manifest("m", "b", "node1", {"app": "b"}, [(80, "TCP")]),
        ),
    )
    wait_pods("m", {"a", "b"})


def test_mode_always_denies_without_policy(lab_lock: None) -> None:
    _one_node_lab(policy_enforcement="always")
    try:
        assert probe("m/a", "m/b:80/TCP") == "timeout"
        assert probe("node:node1", "m/b:80/TCP") == "reachable"  # allow-localhost
        import_policy(
            {
                "apiVersion": "cilium.io/v2",
                "kind": "CiliumNetworkPolicy",
                "metadata": {"name": "a-to-b", "namespace": "m"},
                "spec": {
                    "endpointSelector": {},
                    "ingress": [{"fromEndpoints": [{}]}],
                    "egress": [{"toEndpoints": [{}]}],
                },
            }
        )
        assert probe("m/a", "m/b:80/TCP") == "reachable"
    finally:
        control.down()
        assert control.leftovers().empty


def test_audit_mode_reports_instead_of_dropping(lab_lock: None) -> None:
    _one_node_lab(policy_audit_mode=True)
    try:
        import_policy(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "deny-all", "namespace": "m"},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
            }
        )

        def audited() -> None:
            assert probe("m/a", "m/b:80/TCP") == "reachable"

        out = monitor_during(["-t", "policy-verdict", "-n", "2", "--duration", "15", "-j"], audited)
        # One verdict per side of the new connection: egress at a (not enforced),
        # ingress at b (enforced, audited).
        events = {e["direction"]: e for e in map(json.loads, out.splitlines())}
        assert events["ingress"]["verdictName"] == "AUDIT", events
        assert events["egress"]["verdictName"] == "FORWARDED", events
        assert "Enabled (Audit)" in ax("endpoint", "list").stdout.split("\n")[1]
    finally:
        control.down()
        assert control.leftovers().empty
