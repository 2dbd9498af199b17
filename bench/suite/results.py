"""Result rows, what could not be measured and why, and the report's schema. Pure.

A row is one measured quantity: ``{scenario, datapath, metric, median, unit, runs,
ratio_to_limit}`` plus the family it belongs to, the samples behind the median (one per
run) and which row the ratio divides by. Nothing is ever estimated: what a family could
not measure is an :class:`Unavailable` (the feature is not in the tree) or a
:class:`Failure` (it is, and the measurement went wrong), never a row.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

ROW_KEYS = ("scenario", "datapath", "metric", "median", "unit", "runs", "ratio_to_limit")


@dataclass(frozen=True)
class Row:
    family: str
    scenario: str
    datapath: str
    metric: str
    median: float
    unit: str
    runs: int
    ratio_to_limit: float | None
    samples: tuple[float, ...] = ()
    limit: str | None = None  # "datapath / scenario" the ratio divides by

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["samples"] = list(self.samples)
        return out


@dataclass(frozen=True)
class Unavailable:
    family: str
    what: str
    reason: str


@dataclass(frozen=True)
class Failure:
    family: str
    what: str
    error: str


@dataclass
class FamilyResult:
    rows: list[Row] = field(default_factory=list)
    unavailable: list[Unavailable] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def extend(self, other: FamilyResult) -> None:
        self.rows += other.rows
        self.unavailable += other.unavailable
        self.failures += other.failures
        self.notes += other.notes


def rounded(x: float) -> float:
    """Four significant digits: more than the noise, less than the float."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, max(0, 3 - math.floor(math.log10(abs(x)))))


def row(
    family: str,
    scenario: str,
    datapath: str,
    metric: str,
    unit: str,
    samples: Sequence[float],
    limit_samples: Sequence[float] | None = None,
    limit: str | None = None,
) -> Row:
    """A row from its samples; the ratio is median / the limit's median when given."""
    if not samples:
        raise ValueError(f"{datapath} {scenario} {metric}: no samples")
    median = statistics.median(samples)
    ratio = None
    if limit_samples:
        base = statistics.median(limit_samples)
        ratio = round(median / base, 3) if base else None
    return Row(
        family,
        scenario,
        datapath,
        metric,
        rounded(median),
        unit,
        len(samples),
        ratio,
        tuple(rounded(s) for s in samples),
        limit if ratio is not None else None,
    )


def report_problems(report: Mapping[str, Any]) -> list[str]:
    """What is wrong with a report's shape (empty when it is well-formed)."""
    problems: list[str] = []
    for key, kind in (
        ("rows", list),
        ("unavailable", list),
        ("failures", list),
        ("machine", dict),
        ("kernel", str),
        ("config", dict),
        ("created", str),
    ):
        if not isinstance(report.get(key), kind):
            problems.append(f"{key}: missing or not a {kind.__name__}")
    if problems:
        return problems
    seen: set[tuple[str, str, str, str]] = set()
    for i, r in enumerate(report["rows"]):
        where = f"rows[{i}]"
        missing = [k for k in (*ROW_KEYS, "family", "samples") if k not in r]
        if missing:
            problems.append(f"{where}: missing {missing}")
            continue
        for k in ("scenario", "datapath", "metric", "unit", "family"):
            if not isinstance(r[k], str) or not r[k]:
                problems.append(f"{where}.{k}: not a non-empty string")
        med = r["median"]
        if not isinstance(med, int | float) or isinstance(med, bool) or not math.isfinite(med):
            problems.append(f"{where}.median: not a finite number")
        elif med < 0:
            problems.append(f"{where}.median: negative")
        if not isinstance(r["runs"], int) or r["runs"] < 1:
            problems.append(f"{where}.runs: not a positive integer")
        elif not isinstance(r["samples"], list) or len(r["samples"]) != r["runs"]:
            problems.append(f"{where}.samples: not a list of runs={r['runs']} numbers")
        ratio = r["ratio_to_limit"]
        if ratio is not None and (not isinstance(ratio, int | float) or not ratio > 0):
            problems.append(f"{where}.ratio_to_limit: not null or a positive number")
        ident = (r["family"], r["scenario"], r["datapath"], r["metric"])
        if ident in seen:
            problems.append(f"{where}: duplicate {ident}")
        seen.add(ident)
    for section, text_key in (("unavailable", "reason"), ("failures", "error")):
        for i, u in enumerate(report[section]):
            if not all(isinstance(u.get(k), str) and u[k] for k in ("family", "what", text_key)):
                problems.append(f"{section}[{i}]: needs family, what and {text_key}")
    return problems
