"""Audited traffic as flows (a 1-node lab in policy audit mode), and ``axoneme monitor``
still fed from the same ring as the observer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from axoneme.lab import control
from axoneme.lab.topology import LabConfig
from privileged.helpers import ax, manifest, namespace, pod_manifest, wait_for, wait_pods

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_audited_flows_and_the_monitor(lab_lock: None) -> None:
    control.down(grace=5.0)
    control.up(LabConfig(nodes=1, policy_audit_mode=True))
    try:
        ax(
            "apply",
            "-f",
            "-",
            stdin=manifest(
                namespace("aud"),
                pod_manifest("aud", "a", "node1", {"app": "a"}, []),
                pod_manifest("aud", "b", "node1", {"app": "b"}, [(80, "TCP")]),
            ),
        )
        wait_pods("aud", {"a", "b"})
        deny_all = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny-all", "namespace": "aud"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }
        out = ax("policy", "import", "-f", "-", stdin=manifest(deny_all)).stdout
        ax("policy", "wait", out.strip().split()[-1], "--timeout", "30")
        monitor = subprocess.Popen(
            [sys.executable, "-m", "axoneme.cli.main", "monitor", "-t", "policy-verdict",
             "-n", "2", "--duration", "20", "-j"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            time.sleep(1.0)
            probe = ax("probe", "--timeout", "2", "aud/a", "aud/b:80/TCP", check=False).stdout
            assert probe.startswith("reachable")  # audited, not dropped
            mon_out, _ = monitor.communicate(timeout=30)
        finally:
            if monitor.poll() is None:
                monitor.kill()
                monitor.communicate()
        events = {e["direction"]: e for e in map(json.loads, mon_out.splitlines())}
        assert events["ingress"]["verdictName"] == "AUDIT", events

        def verdicts() -> list[dict[str, Any]]:
            out = ax("observe", "--last", "50", "-t", "policy-verdict", "-o", "json").stdout
            return [json.loads(line)["flow"] for line in out.splitlines()]

        flows = wait_for(lambda: len(verdicts()) >= 2 and verdicts(), 10, "policy verdict flows")
        ingress = next(f for f in flows if f["trafficDirection"] == "INGRESS")
        egress = next(f for f in flows if f["trafficDirection"] == "EGRESS")
        assert ingress["verdict"] == "AUDIT" and ingress["dropReasonDesc"] == "POLICY_DENIED"
        assert egress["verdict"] == "FORWARDED"
        assert ingress["source"]["podName"] == "a" and ingress["destination"]["podName"] == "b"
        assert ingress["source"]["identity"] == egress["source"]["identity"] >= 256
        assert ingress["destination"]["namespace"] == "aud"
        # No drop happened: audit reports, the kernel forwards.
        drops = ax("observe", "--last", "50", "-t", "drop", "-n", "aud", "-o", "json").stdout
        assert drops.strip() == ""
        line = ax("observe", "--last", "50", "-t", "policy-verdict", "--traffic-direction",
                  "ingress").stdout  # fmt: skip
        assert "policy-verdict:none INGRESS AUDITED" in line
    finally:
        control.down()
        assert control.leftovers().empty
