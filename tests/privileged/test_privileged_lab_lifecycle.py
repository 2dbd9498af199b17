"""The lab's whole life: up, supervise, run out of addresses, down, and nothing left.

Each test builds and removes its own lab, counting what exists on the machine
before and after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from axoneme.api.client import AgentClient
from axoneme.lab import control
from axoneme.lab.topology import LAB_DIR, LabConfig
from privileged.helpers import ax, manifest, namespace, pod_manifest, wait_for, wait_pods

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def machine_snapshot() -> dict[str, Any]:
    """What a lab could leave behind, counted in the machine's own namespaces."""
    with IPRoute() as ipr:
        links = sorted(str(link.get("IFLA_IFNAME")) for link in ipr.get_links())
        routes = sorted(str(r.get("RTA_DST")) + "/" + str(r["dst_len"]) for r in ipr.get_routes())
        addrs = sorted(str(a.get("IFA_ADDRESS")) for a in ipr.get_addr())
    netns = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    bpf = (
        sorted(str(p) for p in Path("/sys/fs/bpf").rglob("*"))
        if Path("/sys/fs/bpf").is_dir()
        else []
    )
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    return {
        "links": links,
        "routes": routes,
        "addrs": addrs,
        "netns": netns,
        "bpf": bpf,
        "procs": control.lab_processes(),
        "files": LAB_DIR.exists(),
        "ip_forward": forward,
    }


def test_up_supervise_down_leaves_the_machine_as_it_was(lab_lock: None) -> None:
    control.down()
    before = machine_snapshot()
    state = control.up(LabConfig(nodes=2))
    try:
        during = machine_snapshot()
        # The lab touched nothing in the machine's own namespace.
        for key in ("links", "routes", "addrs", "ip_forward"):
            assert during[key] == before[key], key
        # Nodes route only inside the lab: no default route toward the machine.
        for node in ("axn-node1", "axn-node2"):
            routes = subprocess.run(
                ["ip", "-n", node, "route"], capture_output=True, text=True, check=True
            ).stdout
            assert "default" not in routes, routes
        ax(
            "apply",
            "-f",
            "-",
            stdin=manifest(
                namespace("life"),
                pod_manifest("life", "p1", "node1", {}, [(80, "TCP")]),
                pod_manifest("life", "p2", "node2", {}, [(80, "TCP")]),
            ),
        )
        wait_pods("life", {"p1", "p2"})
        # An agent that dies is restarted, as a DaemonSet would.
        victim = state["nodes"][1]
        os.kill(victim["agentPid"], signal.SIGKILL)

        def restarted() -> bool:
            nodes = (control.read_state() or {}).get("nodes", [])
            node = next(n for n in nodes if n["name"] == victim["name"])
            if node["agentRestarts"] < 1:
                return False
            try:
                AgentClient(Path(node["socket"]), timeout=2).get("/v1/healthz")
            except Exception:
                return False
            return True

        wait_for(restarted, 20, "the agent to be restarted")
        assert "Ok" in ax("lab", "status").stdout
    finally:
        started = time.monotonic()
        swept = control.down()
    # The supervisor stopped every process it ran; nothing had to be killed by the sweep.
    assert swept.processes == [], swept
    assert time.monotonic() - started < 15
    after = machine_snapshot()
    assert after == before


def test_exhausted_pod_cidr_is_a_clear_error_that_leaves_nothing(lab_lock: None) -> None:
    # A /30 per node holds exactly one pod (network, router and broadcast are reserved).
    control.up(LabConfig(nodes=1, pod_cidr="10.42.0.0/29", pod_cidr_mask=30))
    try:
        ax(
            "apply",
            "-f",
            "-",
            stdin=manifest(namespace("full"), pod_manifest("full", "first", "node1", {}, [])),
        )
        pods = wait_pods("full", {"first"})
        assert pods["first"]["status"]["podIP"] == "10.42.0.6"
        ax("apply", "-f", "-", stdin=manifest(pod_manifest("full", "second", "node1", {}, [])))

        def failed() -> dict[str, Any] | None:
            status = ax("get", "pods", "-n", "full", "-o", "json").stdout

            items = {p["metadata"]["name"]: p for p in json.loads(status)["items"]}
            second = items["second"]["status"]
            return second if second.get("reason") == "FailedCreatePodSandBox" else None

        status = wait_for(failed, 20, "the second pod to fail")
        assert status["phase"] == "Pending" and "range is full" in status["message"]
        assert "FailedCreatePodSandBox" in ax("get", "pods", "-n", "full").stdout
        # Only the first pod's sandbox, endpoint and address exist.
        sandboxes = [n for n in os.listdir("/run/netns") if n.startswith("axn-p-")]
        assert len(sandboxes) == 1
        agent = AgentClient(Path(control.require_state()["nodes"][0]["socket"]))
        assert [e["ipv4"] for e in agent.get("/v1/endpoints")] == ["10.42.0.6"]
        assert agent.get("/v1/status")["ipam"]["allocated"] == 1
        # Deleting the first pod frees the address, and the waiting pod then gets it.
        ax("delete", "-f", "-", stdin=manifest(pod_manifest("full", "first", "node1", {}, [])))
        pods = wait_pods("full", {"second"}, timeout=60)
        assert pods["second"]["status"]["podIP"] == "10.42.0.6"
    finally:
        control.down()
        assert control.leftovers().empty


def test_lab_refuses_to_start_twice_and_down_is_idempotent(lab_lock: None) -> None:
    control.up(LabConfig(nodes=1))
    try:
        proc = ax("lab", "up", "--nodes", "1", check=False)
        assert proc.returncode == 1 and "already running" in proc.stderr
    finally:
        ax("lab", "down")
    assert "lab removed" in ax("lab", "down").stdout
    assert control.leftovers().empty
    proc = ax("lab", "status", check=False)
    assert proc.returncode == 1 and "no lab is running" in proc.stdout
