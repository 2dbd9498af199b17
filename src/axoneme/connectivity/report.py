"""The connectivity test's report: one line per scenario (plus one per wrong probe) and a
summary. Pure formatting; ``fancy`` adds the emoji cilium-cli prints on a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["pass", "fail", "skip"]

_ICONS: dict[Status, str] = {"pass": "✅", "fail": "❌", "skip": "⏭"}
INDENT = "    "


@dataclass(frozen=True)
class ScenarioResult:
    """What one scenario came to.

    ``problems`` are the reasons for a failure: one line per wrong probe
    (``client -> echo-other-node:8080/TCP: got timeout, want reachable``), or the
    step that went wrong (applying or removing its policies). For a skip, the reason.
    """

    name: str
    status: Status
    probes: int = 0
    seconds: float = 0.0
    problems: tuple[str, ...] = field(default=())


def _duration(seconds: float) -> str:
    return f"{seconds:.1f}s"


def format_result(result: ScenarioResult, fancy: bool = False) -> str:
    """``[pass] name (3 probes, 0.4s)``, ``[fail] name: ...``, ``[skip] name: reason``.

    A failure with one problem keeps it on the line; with several, the line
    counts them and each follows on its own indented line.
    """
    icon = f"{_ICONS[result.status]} " if fancy else ""
    head = f"{icon}[{result.status}] {result.name}"
    if result.status == "pass":
        plural = "" if result.probes == 1 else "s"
        return f"{head} ({result.probes} probe{plural}, {_duration(result.seconds)})"
    if result.status == "skip":
        return f"{head}: {result.problems[0] if result.problems else 'skipped'}"
    problems = result.problems or ("failed",)
    if len(problems) == 1:
        return f"{head}: {problems[0]}"
    if result.probes:
        wrong = f"{len(problems)} of {result.probes} probes wrong ({_duration(result.seconds)})"
    else:
        wrong = f"{len(problems)} problems"
    return "\n".join([f"{head}: {wrong}", *(INDENT + p for p in problems)])


def counts(results: Sequence[ScenarioResult]) -> dict[Status, int]:
    found: dict[Status, int] = {"pass": 0, "fail": 0, "skip": 0}
    for result in results:
        found[result.status] += 1
    return found


def summary(results: Sequence[ScenarioResult], seconds: float | None = None) -> str:
    """``12 passed, 1 failed, 3 skipped`` (and the time taken when given)."""
    n = counts(results)
    text = f"{n['pass']} passed, {n['fail']} failed, {n['skip']} skipped"
    return text if seconds is None else f"{text} in {_duration(seconds)}"


def failed_names(results: Sequence[ScenarioResult]) -> list[str]:
    return [r.name for r in results if r.status == "fail"]


def exit_status(results: Sequence[ScenarioResult]) -> int:
    """1 if any scenario failed, else 0 (skips do not fail the run)."""
    return 1 if failed_names(results) else 0
