"""Connectivity-test report lines, summary and exit status (pure, no root)."""

from __future__ import annotations

from axoneme.connectivity.report import (
    ScenarioResult,
    counts,
    exit_status,
    failed_names,
    format_result,
    summary,
)

WRONG = "client -> echo-other-node:8080/TCP: got timeout, want reachable"
SKIP_WHY = "services are not implemented yet (kube-proxy replacement issue)"


def test_pass_line() -> None:
    result = ScenarioResult("pod-to-pod-same-node", "pass", 3, 0.42)
    assert format_result(result) == "[pass] pod-to-pod-same-node (3 probes, 0.4s)"
    assert format_result(result, fancy=True) == "✅ [pass] pod-to-pod-same-node (3 probes, 0.4s)"
    one = ScenarioResult("x", "pass", 1, 2.0)
    assert format_result(one) == "[pass] x (1 probe, 2.0s)"


def test_fail_line_with_one_problem_keeps_it_on_the_line() -> None:
    result = ScenarioResult("pod-to-pod-other-node", "fail", 4, 2.1, (WRONG,))
    assert format_result(result) == f"[fail] pod-to-pod-other-node: {WRONG}"
    assert format_result(result, fancy=True).startswith("❌ [fail] pod-to-pod-other-node: ")


def test_fail_with_several_problems_lists_each_on_its_own_line() -> None:
    other = "client2 -> echo-same-node:8080/TCP: got timeout, want reachable"
    result = ScenarioResult("allow-all", "fail", 5, 2.25, (WRONG, other))
    assert format_result(result).splitlines() == [
        "[fail] allow-all: 2 of 5 probes wrong (2.2s)",
        f"    {WRONG}",
        f"    {other}",
    ]


def test_fail_without_probes_run() -> None:
    result = ScenarioResult("allow-all", "fail", 0, 60.0, ("applying its policies: x", "y"))
    assert format_result(result).splitlines()[0] == "[fail] allow-all: 2 problems"


def test_skip_line() -> None:
    result = ScenarioResult("pod-to-service-clusterip-same-node", "skip", problems=(SKIP_WHY,))
    assert format_result(result) == f"[skip] pod-to-service-clusterip-same-node: {SKIP_WHY}"
    assert format_result(result, fancy=True) == (
        f"⏭ [skip] pod-to-service-clusterip-same-node: {SKIP_WHY}"
    )


def test_plain_lines_are_ascii() -> None:
    for result in (
        ScenarioResult("a", "pass", 1, 0.1),
        ScenarioResult("b", "fail", 1, 0.1, (WRONG,)),
        ScenarioResult("c", "skip", problems=(SKIP_WHY,)),
    ):
        assert format_result(result).isascii()


def test_summary_counts_skips_apart_and_they_do_not_fail_the_run() -> None:
    results = [
        *(ScenarioResult(f"p{i}", "pass", 1, 0.1) for i in range(12)),
        ScenarioResult("f", "fail", 1, 0.1, (WRONG,)),
        *(ScenarioResult(f"s{i}", "skip", problems=(SKIP_WHY,)) for i in range(3)),
    ]
    assert summary(results) == "12 passed, 1 failed, 3 skipped"
    assert summary(results, 41.26) == "12 passed, 1 failed, 3 skipped in 41.3s"
    assert counts(results) == {"pass": 12, "fail": 1, "skip": 3}
    assert failed_names(results) == ["f"]
    assert exit_status(results) == 1
    passing = [r for r in results if r.status != "fail"]
    assert exit_status(passing) == 0
    assert exit_status([ScenarioResult("s", "skip", problems=(SKIP_WHY,))]) == 0
    assert summary([]) == "0 passed, 0 failed, 0 skipped"
