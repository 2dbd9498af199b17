"""The connectivity runner's control flow with the lab faked out: policies are removed
after every scenario whatever happens, the namespace is removed whatever happens,
outcomes are compared with expectations; and the CLI's errors (pure, no root)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from axoneme.cli import main as cli_main
from axoneme.cli.context import AgentRef, CLIError
from axoneme.connectivity import runner
from axoneme.connectivity.report import ScenarioResult
from axoneme.connectivity.scenarios import (
    DROPPED,
    NAMESPACE,
    NODEPORT,
    NODEPORT_MISSING,
    OTHER_NODE,
    REACHABLE,
    SAME_NODE,
    Probe,
    Scenario,
)
from axoneme.probe.run import Outcome, ProbeResult
from axoneme.probe.spec import ProbeSpec

VIEW = runner.LabView({SAME_NODE: "node1", OTHER_NODE: "node2"}, [])
OPTIONS = runner.Options(probe_timeout=0.1)

POLICY: dict[str, Any] = {
    "apiVersion": "cilium.io/v2",
    "kind": "CiliumNetworkPolicy",
    "metadata": {"name": "p", "namespace": NAMESPACE},
    "spec": {"endpointSelector": {}, "ingress": [{"fromEntities": ["all"]}]},
}
SCENARIO = Scenario(
    "s",
    (
        Probe("client", "echo-same-node", 8080, "TCP", REACHABLE),
        Probe("client", "echo-other-node", 8080, "UDP", DROPPED),
    ),
    (POLICY,),
)


class FakeLab:
    def __init__(self, outcomes: Sequence[Outcome] = (), probe_error: str | None = None) -> None:
        self.outcomes = list(outcomes)
        self.probe_error = probe_error
        self.calls: list[str] = []
        self.specs: list[ProbeSpec] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def apply(objects: Sequence[dict[str, Any]]) -> int:
            self.calls.append("apply " + ",".join(o["metadata"]["name"] for o in objects))
            return 10

        async def delete(keys: Sequence[Any]) -> int:
            self.calls.append("delete " + ",".join(k.name for k in keys))
            return 11

        async def wait(refs: Sequence[AgentRef], revision: int, timeout: float) -> None:
            self.calls.append(f"wait {revision}")

        async def probes(specs: list[ProbeSpec], timeout: float) -> list[ProbeResult]:
            self.specs += specs
            self.calls.append(f"probe {len(specs)}")
            if self.probe_error:
                raise CLIError(self.probe_error)
            return [ProbeResult(o, None, "detail") for o in self.outcomes]

        monkeypatch.setattr(runner, "_apply", apply)
        monkeypatch.setattr(runner, "_delete", delete)
        monkeypatch.setattr(runner, "wait_realized", wait)
        monkeypatch.setattr(runner, "run_probes", probes)


def _run_one(scenario: Scenario) -> ScenarioResult:
    return asyncio.run(runner.run_scenario(scenario, VIEW, OPTIONS))


def test_passing_scenario_applies_waits_probes_then_removes_and_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab = FakeLab(["reachable", "timeout"])
    lab.install(monkeypatch)
    result = _run_one(SCENARIO)
    assert result.status == "pass" and result.probes == 2 and result.problems == ()
    assert lab.calls == ["apply p", "wait 10", "probe 2", "delete p", "wait 11"]
    assert [str(s) for s in lab.specs] == [
        f"{NAMESPACE}/client {NAMESPACE}/echo-same-node:8080/TCP",
        f"{NAMESPACE}/client {NAMESPACE}/echo-other-node:8080/UDP",
    ]


def test_wrong_outcomes_fail_naming_each_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLab(["timeout", "reachable"]).install(monkeypatch)
    result = _run_one(SCENARIO)
    assert result.status == "fail"
    assert result.problems == (
        "client -> echo-same-node:8080/TCP: got timeout, want reachable (detail)",
        "client -> echo-other-node:8080/UDP: got reachable, want timeout (detail)",
    )


def test_policies_are_removed_even_when_probing_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = FakeLab(probe_error="pod axoneme-connectivity/client is not running")
    lab.install(monkeypatch)
    result = _run_one(SCENARIO)
    assert result.status == "fail"
    assert result.problems == ("pod axoneme-connectivity/client is not running",)
    assert lab.calls[-2:] == ["delete p", "wait 11"]


def test_a_policy_that_is_not_realized_fails_the_scenario_without_probing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab = FakeLab(["reachable", "timeout"])
    lab.install(monkeypatch)

    async def never(refs: Sequence[AgentRef], revision: int, timeout: float) -> None:
        lab.calls.append(f"wait {revision}")
        if revision == 10:
            raise CLIError("timed out after 60s waiting for policy revision 10: node2 at 9")

    monkeypatch.setattr(runner, "wait_realized", never)
    result = _run_one(SCENARIO)
    assert result.problems == (
        "applying its policies: timed out after 60s waiting for policy revision 10: node2 at 9",
    )
    assert "probe 2" not in lab.calls and lab.calls[-2:] == ["delete p", "wait 11"]


def test_no_policy_scenario_touches_no_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = FakeLab(["reachable"])
    lab.install(monkeypatch)
    scenario = Scenario("plain", (Probe("client", SAME_NODE, 80, "TCP", REACHABLE),))
    assert _run_one(scenario).status == "pass"
    assert lab.calls == ["probe 1"]
    assert str(lab.specs[0]) == f"{NAMESPACE}/client node:node1:80/TCP"


def test_skipped_scenario_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = FakeLab()
    lab.install(monkeypatch)
    scenario = Scenario("pod-to-service-x", SCENARIO.probes, skip=NODEPORT_MISSING)
    result = _run_one(scenario)
    assert (result.status, result.problems) == ("skip", (NODEPORT_MISSING,))
    assert lab.calls == []


class FakeRun:
    """``run``'s collaborators: deploy, remove, the scenarios."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, leftover: bool = False) -> None:
        self.calls: list[str] = []
        self.lines: list[str] = []

        async def exists() -> bool:
            return leftover

        async def deploy(
            view: runner.LabView, options: runner.Options, emit: Any
        ) -> dict[str, str]:
            self.calls.append("deploy")
            return {}

        async def remove(view: runner.LabView, options: runner.Options) -> None:
            self.calls.append("remove")

        monkeypatch.setattr(runner, "lab_view", lambda: VIEW)
        monkeypatch.setattr(runner, "namespace_exists", exists)
        monkeypatch.setattr(runner, "deploy", deploy)
        monkeypatch.setattr(runner, "remove", remove)

    def run(self, scenarios: Sequence[Scenario], keep: bool = False) -> list[ScenarioResult]:
        options = runner.Options(keep=keep)
        return asyncio.run(runner.run(scenarios, options, self.lines.append))


def test_run_deploys_runs_in_order_and_removes(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLab(["reachable", "timeout"]).install(monkeypatch)
    fake = FakeRun(monkeypatch, leftover=True)
    skipped = Scenario("pod-to-service-x", SCENARIO.probes, skip=NODEPORT_MISSING)
    results = fake.run([SCENARIO, skipped])
    assert [(r.name, r.status) for r in results] == [("s", "pass"), ("pod-to-service-x", "skip")]
    assert fake.calls == ["remove", "deploy", "remove"]  # the leftover first
    assert fake.lines[1].startswith("Removing namespace")
    assert fake.lines[-3].startswith("[pass] s (2 probes")
    assert fake.lines[-2] == f"[skip] pod-to-service-x: {NODEPORT_MISSING}"
    assert fake.lines[-1] == f"Removed namespace {NAMESPACE}"


def test_run_removes_the_namespace_when_something_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun(monkeypatch)

    async def boom(
        scenario: Scenario, view: runner.LabView, options: runner.Options, services: Any
    ) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_scenario", boom)
    with pytest.raises(KeyboardInterrupt):
        fake.run([SCENARIO])
    assert fake.calls == ["deploy", "remove"]


def test_run_keep_leaves_the_workloads(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLab(["reachable", "timeout"]).install(monkeypatch)
    fake = FakeRun(monkeypatch)
    fake.run([SCENARIO], keep=True)
    assert fake.calls == ["deploy"]
    assert "--keep" in fake.lines[-1]


def test_only_skipped_scenarios_need_no_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lab() -> runner.LabView:
        raise AssertionError("the lab was consulted")

    monkeypatch.setattr(runner, "lab_view", no_lab)
    lines: list[str] = []
    skipped = Scenario("pod-to-service-x", SCENARIO.probes, skip=NODEPORT_MISSING)
    results = asyncio.run(runner.run([skipped], runner.Options(), lines.append))
    assert [r.status for r in results] == ["skip"]
    assert lines == [f"[skip] pod-to-service-x: {NODEPORT_MISSING}"]


# ---- the CLI -----------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["connectivity", "test", *args])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_cli_bad_regex_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "--test", "pod-to-(")
    assert code == 1 and out == ""
    assert err.startswith("error: --test: 'pod-to-(' is not a valid regular expression")


def test_cli_selection_of_nothing_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "--test", "no-such-scenario")
    assert code == 1 and "--test: 'no-such-scenario' selects no scenario" in err


def test_cli_timeout_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "--timeout", "0")
    assert code == 1 and "error: --timeout: 0.0 must be positive" in err


def test_a_scenario_runs_only_where_every_agent_serves_its_feature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab = FakeLab(["reachable"])
    lab.install(monkeypatch)
    probes = (Probe("world", SAME_NODE, 31080, "TCP", REACHABLE),)
    scenario = Scenario("world-to-nodeport", probes, requires=frozenset({NODEPORT}))
    result = asyncio.run(runner.run_scenario(scenario, VIEW, runner.Options()))
    assert (result.status, result.problems) == ("skip", (NODEPORT_MISSING,))
    assert lab.calls == []
    served = runner.LabView(VIEW.nodes, VIEW.refs, frozenset({NODEPORT}))
    result = asyncio.run(runner.run_scenario(scenario, served, runner.Options()))
    assert result.status == "pass" and lab.calls == ["probe 1"]


def test_features_are_what_every_agent_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    refs = [AgentRef("node1", Path("/a")), AgentRef("node2", Path("/b"))]
    answers = {"node1": "Enabled", "node2": "Disabled"}

    def ask(ref: AgentRef, path: str) -> Any:
        assert path == "/v1/status"
        return {"kubeProxyReplacement": {"nodePort": answers[ref.node]}}

    monkeypatch.setattr(runner, "_ask", ask)
    assert runner.features(refs) == frozenset()
    answers["node2"] = "Enabled"
    assert runner.features(refs) == frozenset({NODEPORT})
    monkeypatch.setattr(runner, "_ask", lambda ref, path: None)  # an agent that is down
    assert runner.features(refs) == frozenset()


def test_cli_failure_exits_1_with_the_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fake_run(scenarios: Sequence[Scenario], options: Any, emit: Any) -> Any:
        results = [
            ScenarioResult(
                "pod-to-pod-same-node", "fail", 3, 2.0, ("x -> y:1/TCP: got a, want b",)
            ),
            ScenarioResult("pod-to-world", "pass", 3, 0.1),
        ]
        for r in results:
            emit(f"[{r.status}] {r.name}")
        return results

    monkeypatch.setattr("axoneme.connectivity.command.run_with_signals", fake_run)
    code, out, _ = _cli(capsys)
    assert code == 1
    assert out.splitlines()[-2:] == [
        out.splitlines()[-2],
        "Failed: pod-to-pod-same-node",
    ]
    assert out.splitlines()[-2].startswith("1 passed, 1 failed, 0 skipped in ")


def test_a_failed_removal_after_a_clean_run_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLab(["reachable", "timeout"]).install(monkeypatch)
    fake = FakeRun(monkeypatch)

    async def stuck(view: runner.LabView, options: runner.Options) -> None:
        raise CLIError("1 endpoint(s) still present")

    monkeypatch.setattr(runner, "remove", stuck)
    with pytest.raises(CLIError, match=f"could not remove namespace {NAMESPACE}: 1 endpoint"):
        fake.run([SCENARIO])


def test_a_failed_removal_does_not_hide_the_first_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun(monkeypatch)

    async def not_ready(view: runner.LabView, options: runner.Options, emit: Any) -> None:
        raise CLIError("workloads not ready after 90s: pod client: Pending")

    async def stuck(view: runner.LabView, options: runner.Options) -> None:
        raise CLIError("store unreachable")

    monkeypatch.setattr(runner, "deploy", not_ready)
    monkeypatch.setattr(runner, "remove", stuck)
    with pytest.raises(CLIError, match="workloads not ready"):
        fake.run([SCENARIO])
    assert fake.lines[-1] == f"warning: could not remove namespace {NAMESPACE}: store unreachable"
