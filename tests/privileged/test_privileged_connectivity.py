"""``axoneme connectivity test`` against a 2-node lab: every scenario passes (NodePort is
skipped with its reason where the agents do not serve it), a deliberately broken cluster
fails with the probe named, and the test's namespace is gone afterwards however the run
ends (failure, Ctrl-C, SIGTERM)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from typing import Any

import pytest

from axoneme.cli.context import agents
from axoneme.connectivity import runner
from axoneme.connectivity.scenarios import FEATURE_MISSING, NAMESPACE, SCENARIOS
from axoneme.lab import netsetup
from privileged.helpers import ax, manifest

pytestmark = [pytest.mark.lab, pytest.mark.slow]

LINE = re.compile(r"^(?:\S+ )?\[(pass|fail|skip)\] ([a-z0-9-]+)(?:: (.*)| \((.*)\))$")
SKIPPED = {s.name: s.skip for s in SCENARIOS if s.skip is not None}
BROKEN = "connectivity-test-deny-all"


def connectivity(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "axoneme.cli.main", "connectivity", "test", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def scenario_lines(out: str) -> dict[str, tuple[str, str]]:
    """Scenario name -> (status, the rest of its line)."""
    found: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        match = LINE.match(line)
        if match:
            status, name, message, stats = match.groups()
            assert name not in found, f"{name} reported twice:\n{out}"
            found[name] = (status, message or stats)
    return found


def assert_namespace_gone() -> None:
    namespaces = json.loads(ax("get", "namespaces", "-o", "json").stdout)["items"]
    assert NAMESPACE not in {n["metadata"]["name"] for n in namespaces}
    pods = json.loads(ax("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    assert pods == []
    services = json.loads(ax("get", "services", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    assert services == []
    policies = json.loads(ax("policy", "get", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    assert [p for p in policies if p["metadata"].get("namespace") == NAMESPACE] == []
    assert NAMESPACE not in ax("endpoint", "list").stdout
    # No pod sandbox is left either: the lab then has only its node, lab and world netns.
    assert not [n for n in netsetup.lab_namespaces() if n.startswith("axn-p-")]


def test_connectivity_test_passes_on_a_healthy_lab(lab: dict[str, Any]) -> None:
    proc = connectivity()
    # What the agents serve now is what they served during the run (features only come
    # up, as an agent starts).
    served = runner.features(agents(None))
    skipped = dict(SKIPPED)
    for s in SCENARIOS:
        if s.requires - served:
            skipped[s.name] = FEATURE_MISSING[sorted(s.requires - served)[0]]
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    lines = scenario_lines(proc.stdout)
    assert set(lines) == {s.name for s in SCENARIOS}, report
    for name, (status, rest) in lines.items():
        if name in skipped:
            assert (status, rest) == ("skip", skipped[name]), report
        else:
            assert status == "pass", report
            assert re.fullmatch(r"\d+ probes?, \d+\.\ds", rest), rest
    passed = len(SCENARIOS) - len(skipped)
    assert f"{passed} passed, 0 failed, {len(skipped)} skipped in " in proc.stdout, report
    assert_namespace_gone()


def test_a_deny_all_left_in_place_fails_the_test_naming_the_probes(
    lab: dict[str, Any],
) -> None:
    deny_all = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": BROKEN},
        "spec": {
            "endpointSelector": {},
            "ingressDeny": [{"fromEntities": ["all"]}],
            "egressDeny": [{"toEntities": ["all"]}],
        },
    }
    out = ax("policy", "import", "-f", "-", stdin=manifest(deny_all)).stdout
    ax("policy", "wait", out.strip().splitlines()[-1].split()[-1], "--timeout", "30")
    try:
        proc = connectivity("--test", "^pod-to-pod", "--test", "^pod-to-service-clusterip")
        report = proc.stdout + proc.stderr
        assert proc.returncode == 1, report
        lines = scenario_lines(proc.stdout)
        assert set(lines) == {
            "pod-to-pod-same-node",
            "pod-to-pod-other-node",
            "pod-to-service-clusterip-same-node",
            "pod-to-service-clusterip-other-node",
        }, report
        assert lines["pod-to-pod-same-node"][0] == "fail", report
        assert lines["pod-to-pod-same-node"][1].startswith("3 of 3 probes wrong"), report
        assert lines["pod-to-pod-other-node"][0] == "fail", report
        assert lines["pod-to-pod-other-node"][1].startswith("4 of 4 probes wrong"), report
        # Through a ClusterIP the socket LB picks the backend, and the policy drops it.
        for name in ("pod-to-service-clusterip-same-node", "pod-to-service-clusterip-other-node"):
            assert lines[name][0] == "fail", report
            assert lines[name][1].startswith("3 of 3 probes wrong"), report
        # Each wrong probe on its own line, saying what happened and what was expected.
        for wrong in (
            "client -> echo-same-node:8080/TCP: got timeout, want reachable",
            "client -> echo-same-node:8080/UDP: got timeout, want reachable",
            "client2 -> echo-other-node:8080/TCP: got timeout, want reachable",
            "client -> service:echo-other-node:8080/TCP: got timeout, want reachable",
        ):
            assert re.search(rf"^    {re.escape(wrong)}( \(.*\))?$", proc.stdout, re.M), report
        assert "0 passed, 4 failed, 0 skipped in " in proc.stdout, report
        assert (
            "Failed: pod-to-pod-same-node, pod-to-pod-other-node, "
            "pod-to-service-clusterip-same-node, pod-to-service-clusterip-other-node"
        ) in proc.stdout, report
        assert_namespace_gone()
        # The test removed only what it made.
        assert BROKEN in ax("policy", "get").stdout
    finally:
        out = ax("policy", "delete", "--all").stdout
        ax("policy", "wait", out.strip().splitlines()[-1].split()[-1], "--timeout", "30")


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 1)], ids=["SIGINT", "SIGTERM"]
)
def test_interrupted_run_still_removes_its_namespace(
    lab: dict[str, Any], sig: signal.Signals, code: int
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "axoneme.cli.main", "connectivity", "test", "--test", "deny"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("[pass] all-ingress-deny"):
                break  # a policy scenario is running or its policies are in place now
        else:
            raise AssertionError("".join(seen))
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, "".join(seen) + rest + err
    assert f"Removed namespace {NAMESPACE}" in rest, rest + err
    if sig == signal.SIGTERM:
        assert f"terminated (SIGTERM); namespace {NAMESPACE} removed" in err
    assert_namespace_gone()
