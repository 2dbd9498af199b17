"""Network health in a real lab: health endpoints, probes, and a lossy link's alert.

This kernel has no ``sch_netem``, so the lossy link is an iptables ``statistic``
rule in node2's namespace that drops half of what arrives on its underlay
link (raw table, before routing: probes to the node and to its health
endpoint both cross it). The alert must appear on node1, then clear once the
rule is gone and the window has slid past the losses.

Every node maps every health endpoint to ``health`` (4) from the node entries,
so a policy's ``health`` entity matches a remote node's health endpoint.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from axoneme.api.client import AgentAPIError, AgentClient
from axoneme.identity.reserved import HEALTH
from axoneme.probe.run import ProbeTarget, probe
from privileged.conftest import lab_config, started_lab
from privileged.helpers import (
    apply,
    apply_policies,
    ax,
    clear_policies,
    cnp,
    namespace,
    observed_flows,
    pod_manifest,
    wait_for,
    wait_pods,
)
from privileged.scrape import scrape, value

LOSS_RULE = [
    "PREROUTING", "-i", "eth0", "-m", "statistic", "--mode", "random",
    "--probability", "0.5", "-j", "DROP",
]  # fmt: skip


@pytest.fixture(scope="module")
def health_lab(lab_lock: None) -> Iterator[dict[str, Any]]:
    with started_lab(lab_config(health=True)) as state:
        yield state
    assert not any(Path("/run/netns").glob("axn-*-health")), "health namespaces left"


def agent(state: dict[str, Any], node: str) -> AgentClient:
    sock = next(n["socket"] for n in state["nodes"] if n["name"] == node)
    return AgentClient(Path(sock), timeout=5)


def node2_alerts(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in report["alerts"] if a["target"] == "node2" and a["metric"] == "loss"]


def iptables(*args: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", "axn-node2", "iptables", "-t", "raw", *args],
        check=True,
        capture_output=True,
    )


def test_health_endpoints_have_the_health_identity(health_lab: dict[str, Any]) -> None:
    for node, cidr in (("node1", "10.42.1."), ("node2", "10.42.2.")):
        eps = [e for e in agent(health_lab, node).get("/v1/endpoints") if e["identity"] == HEALTH]
        assert len(eps) == 1 and eps[0]["ipv4"].startswith(cidr), eps
        assert Path(f"/run/netns/axn-{node}-health").exists()


def test_every_path_is_probed_and_healthy(health_lab: dict[str, Any]) -> None:
    client = agent(health_lab, "node1")

    def settled() -> dict[str, Any] | None:
        try:
            report: dict[str, Any] = client.get("/v1/health")
        except AgentAPIError:
            return None  # 404 until the health endpoint exists and the checker runs
        paths = [p for n in report["nodes"] for p in n["paths"]]
        full = all(p["sent"] == report["window"] and p["lastOk"] for p in paths)
        return report if len(paths) == 8 and full else None

    first = wait_for(settled, 40, "8 answering paths from node1")
    # One more whole window after that: a healthy lab loses nothing.
    time.sleep(first["window"] * first["intervalSeconds"])
    report = client.get("/v1/health")
    assert not [a for a in report["alerts"] if a["metric"] == "loss"], report["alerts"]
    node2 = next(n for n in report["nodes"] if n["name"] == "node2")
    kinds = {(p["kind"], p["protocol"], p["ip"]) for p in node2["paths"]}
    health_ip = next(
        e["ipv4"] for e in agent(health_lab, "node2").get("/v1/endpoints") if e["identity"] == 4
    )
    assert kinds == {
        ("node", "icmp", "172.30.0.12"),
        ("node", "http", "172.30.0.12"),
        ("endpoint", "icmp", health_ip),
        ("endpoint", "http", health_ip),
    }
    for p in node2["paths"]:
        assert 0 < p["latencySeconds"] < 0.5 and p["lossRatio"] == 0, p

    # The same, and the agent's own families, on its /metrics.
    samples = scrape("172.30.0.11")
    path = {"source_node": "node1", "target_node": "node2", "type": "endpoint"}
    assert value(samples, "axoneme_node_connectivity_status", **path, protocol="icmp") == 1
    latency = value(samples, "axoneme_node_connectivity_latency_seconds", **path, protocol="http")
    assert latency is not None and 0 < latency < 0.5
    assert value(samples, "axoneme_node_connectivity_loss_ratio", **path, protocol="icmp") == 0
    assert value(samples, "axoneme_unreachable_nodes") == 0
    assert value(samples, "axoneme_unreachable_health_endpoints") == 0
    assert value(samples, "axoneme_endpoint_state", endpoint_state="ready") == 1  # health
    assert (value(samples, "axoneme_identity", type="reserved") or 0) >= 8
    assert (value(samples, "axoneme_bpf_map_entries", map_name="axo_lxc") or 0) >= 1
    pressure = value(samples, "axoneme_bpf_map_pressure", map_name="axo_lxc")
    assert pressure is not None and 0 < pressure < 1
    assert (value(samples, "axoneme_policy_regeneration_total") or 0) >= 1
    assert (value(samples, "axoneme_policy_regeneration_time_stats_seconds_count") or 0) >= 1

    out = subprocess.run(
        [".venv/bin/axoneme", "status", "--verbose", "--node", "node1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Cluster health:   2/2 reachable" in out
    assert f"Endpoint connectivity to {health_ip}:" in out
    assert "ALERT" not in out


def health_ips(state: dict[str, Any]) -> dict[str, str]:
    return {
        node: next(e["ipv4"] for e in agent(state, node).get("/v1/endpoints") if e["identity"] == 4)
        for node in ("node1", "node2")
    }


def ipcache_rows(node: str) -> dict[str, str]:
    """``axoneme bpf ipcache``'s rows of one node: prefix → "identity=N tunnelendpoint=IP"."""
    out = ax("bpf", "ipcache", "list", "--node", node).stdout
    rows = [line.split(None, 1) for line in out.splitlines()[2:] if line.strip()]
    return {r[0]: r[1].strip() for r in rows if len(r) == 2}


def test_every_node_maps_every_health_endpoint_to_health(health_lab: dict[str, Any]) -> None:
    ips = health_ips(health_lab)
    entries = json.loads(ax("get", "clusternodes", "-o", "json").stdout)["items"]
    published = {e["metadata"]["name"]: e["spec"].get("health", {}).get("ipv4") for e in entries}
    assert published == ips  # CiliumNode's spec.health.ipv4
    for node, peer, peer_ip in (
        ("node1", "node2", "172.30.0.12"),
        ("node2", "node1", "172.30.0.11"),
    ):

        def mapped(node: str = node, peer: str = peer, peer_ip: str = peer_ip) -> bool:
            rows = ipcache_rows(node)
            return rows.get(f"{ips[peer]}/32") == f"identity={HEALTH} tunnelendpoint={peer_ip}"

        wait_for(mapped, 10, f"{node} to map {peer}'s health endpoint to health")
        assert ipcache_rows(node)[f"{ips[node]}/32"].startswith(f"identity={HEALTH} ")


NS = "hl"


def probe_pod(src: str, dst: str) -> str:
    return ax("probe", "--timeout", "1", src, dst, check=False).stdout.split()[0]


def probe_from_health_netns(node: str, ip: str, port: int) -> str:
    target = ProbeTarget(f"/run/netns/axn-{node}-health", ip, port, "TCP")
    return asyncio.run(probe(target, 1.0)).outcome


@pytest.fixture
def health_policy(health_lab: dict[str, Any]) -> Iterator[dict[str, str]]:
    """Pods in namespace hl, web (node2) allowing only the health entity in and out."""
    apply(
        namespace(NS),
        pod_manifest(NS, "web", "node2", {"app": "web"}, [(80, "TCP")]),
        pod_manifest(NS, "client", "node1", {"app": "client"}, [(80, "TCP")]),
    )
    pods = wait_pods(NS, {"web", "client"})
    policy = cnp(
        NS,
        "health-only",
        {
            "endpointSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"fromEntities": ["health"]}],
            "egress": [{"toEntities": ["health"]}],
        },
    )
    apply_policies(policy)
    try:
        yield {name: p["status"]["podIP"] for name, p in pods.items()}
    finally:
        clear_policies()


def test_the_health_entity_matches_remote_health_endpoints(
    health_lab: dict[str, Any], health_policy: dict[str, str]
) -> None:
    ips = health_ips(health_lab)
    web = health_policy["web"]
    # Egress toEntities [health]: node1's health endpoint (its HTTP responder) is
    # reachable from web on node2, a pod on node1 is not. Before the node entry
    # carried the address, node2 saw it as world and denied it.
    assert probe_pod(f"{NS}/web", f"{ips['node1']}:4240/TCP") == "reachable"
    assert probe_pod(f"{NS}/web", f"{health_policy['client']}:80/TCP") == "timeout"
    # Ingress fromEntities [health]: node1's health endpoint gets in, a pod does not.
    assert probe_from_health_netns("node1", web, 80) == "reachable"
    assert probe_pod(f"{NS}/client", f"{NS}/web:80/TCP") == "timeout"

    # node2's observer names the remote health endpoint as health, both ways.
    seen = observed_flows(
        "--node-name", "node2", "--type", "policy-verdict", "--identity", str(HEALTH)
    )
    ingress = [
        f for f in seen
        if f["IP"]["source"] == ips["node1"] and f["IP"]["destination"] == web
        and f["trafficDirection"] == "INGRESS" and f["verdict"] == "FORWARDED"
    ]  # fmt: skip
    assert ingress and ingress[0]["source"]["identity"] == HEALTH, seen
    assert "reserved:health" in ingress[0]["source"]["labels"]
    egress = [
        f for f in seen
        if f["IP"]["source"] == web and f["IP"]["destination"] == ips["node1"]
        and f["trafficDirection"] == "EGRESS" and f["verdict"] == "FORWARDED"
    ]  # fmt: skip
    assert egress and egress[0]["destination"]["identity"] == HEALTH, seen

    # A policy on pods does not touch the health paths: every probe still answers.
    for node in ("node1", "node2"):
        report = agent(health_lab, node).get("/v1/health")
        assert all(p["lastOk"] for n in report["nodes"] for p in n["paths"]), report
        assert not [a for a in report["alerts"] if a["metric"] == "loss"], report["alerts"]


def test_lossy_link_raises_the_loss_alert_and_it_clears(health_lab: dict[str, Any]) -> None:
    client = agent(health_lab, "node1")
    wait_for(lambda: not node2_alerts(client.get("/v1/health")), 30, "no loss alert before")
    iptables("-I", *LOSS_RULE)
    try:
        alerts = wait_for(
            lambda: node2_alerts(client.get("/v1/health")), 30, "a loss alert for node2"
        )
        assert {a["kind"] for a in alerts} <= {"node", "endpoint"}
        assert all(a["value"] > a["threshold"] for a in alerts)
        out = subprocess.run(
            [".venv/bin/axoneme", "status", "--node", "node1"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "ALERT node1 -> node2" in out and "loss" in out
        samples = scrape("172.30.0.11")
        assert (value(samples, "axoneme_node_connectivity_alerts", metric="loss") or 0) >= 1

        def icmp_loss() -> float:
            # The alert may come from another path first; ICMP's own window fills soon after.
            loss = value(
                scrape("172.30.0.11"),
                "axoneme_node_connectivity_loss_ratio",
                source_node="node1",
                target_node="node2",
                type="node",
                protocol="icmp",
            )
            return loss or 0.0

        assert wait_for(icmp_loss, 30, "ICMP loss node1 -> node2 in the metrics") > 0
        # Probes are round trips: node2's replies from node1 cross the same lossy link.
        wait_for(
            lambda: [
                a
                for a in agent(health_lab, "node2").get("/v1/health")["alerts"]
                if a["target"] == "node1" and a["metric"] == "loss"
            ],
            30,
            "node2 to see loss towards node1",
        )
    finally:
        iptables("-D", *LOSS_RULE)
    wait_for(lambda: not node2_alerts(client.get("/v1/health")), 40, "the loss alert to clear")
