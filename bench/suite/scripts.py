"""The per-subsystem benchmark scripts as families of ``bench/run.py``.

Each script runs as a subprocess (``--out`` a scratch directory, ``--quick`` when the
suite is quick), and its JSON is turned into rows. A script that is not in the tree
yet makes its family "not available"; one that fails is a failure with the tail of its
output. The scripts take their own lock (``/run/axb-bench.lock``) and clean up after
themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.results import Failure, FamilyResult, Row, Unavailable, rounded

BENCH_DIR = Path(__file__).resolve().parents[1]

Say = Callable[[str], None]
Convert = Callable[[Mapping[str, Any], str], FamilyResult]


@dataclass(frozen=True)
class Script:
    family: str
    path: str  # relative to bench/
    args: tuple[str, ...]  # always passed
    quick_args: tuple[str, ...]  # passed with --quick (instead of nothing)
    output: str  # the JSON file it writes in --out
    convert: Convert
    timeout: float  # seconds, full run
    missing: str  # why the family is not available while the script is absent
    # Passed when our caller holds the lab lock: a script that takes it itself would
    # wait for it forever.
    lab_held_args: tuple[str, ...] = ()


def _samples(r: Mapping[str, Any]) -> list[float] | None:
    samples = r.get("samples")
    if isinstance(samples, list) and len(samples) == r.get("runs"):
        return [float(x) for x in samples]
    if r.get("runs") == 1:
        return [float(r["median"])]
    return None


def passthrough(family: str) -> Convert:
    """Rows already shaped ``{scenario, datapath, metric, median, unit, runs, ...}``."""

    def convert(data: Mapping[str, Any], _: str) -> FamilyResult:
        out = FamilyResult()
        seen: set[tuple[str, str, str]] = set()
        for r in data.get("rows", []):
            samples = _samples(r)
            key = (str(r["scenario"]), str(r["datapath"]), str(r["metric"]))
            if samples is None or key in seen:
                continue
            seen.add(key)
            ratio = r.get("ratio_to_limit")
            out.rows.append(
                Row(
                    family,
                    key[0],
                    key[1],
                    key[2],
                    rounded(float(r["median"])),
                    str(r["unit"]),
                    int(r["runs"]),
                    float(ratio) if isinstance(ratio, int | float) and ratio > 0 else None,
                    tuple(rounded(x) for x in samples),
                    r.get("limit") if ratio else None,
                )
            )
        return out

    return convert


CNI_NAMES = {"axoneme-cni": "axoneme-cni", "bridge": "bridge+host-local"}


def convert_cni(data: Mapping[str, Any], family: str) -> FamilyResult:
    """cni_latency rows: per plugin and op, the median and p99 over every call.

    ``samples`` are the per-round medians (``runs`` = rounds); the median is over all
    calls of all rounds, as the script reports it. Ratios divide by bridge + host-local.
    """
    out = FamilyResult()
    by = {(r["plugin"], r["op"]): r for r in data["rows"]}
    for (plugin, op), r in sorted(by.items()):
        base = by.get(("bridge", op))
        for metric, key in (("median", "median_ms"), ("p99", "p99_ms")):
            ratio = round(r[key] / base[key], 3) if base and base[key] else None
            out.rows.append(
                Row(
                    family,
                    f"cni-{op.lower()}",
                    CNI_NAMES.get(plugin, plugin),
                    f"{metric}_latency",
                    rounded(float(r[key])),
                    "ms",
                    int(r["runs"]),
                    ratio,
                    tuple(rounded(float(x)) for x in r["round_medians_ms"]),
                    f"bridge+host-local / cni-{op.lower()}" if ratio else None,
                )
            )
    out.notes.append(
        f"{data['rows'][0]['samples']} calls per plugin and op per round; floors (process "
        f"start): {json.dumps(data.get('floors', {}))[:300]}"
        if data.get("rows")
        else "no rows"
    )
    return out


SCRIPTS: tuple[Script, ...] = (
    Script(
        "cni",
        "cni_latency.py",
        (),
        ("--quick",),
        "cni_latency.json",
        convert_cni,
        300,
        "bench/cni_latency.py is not in the tree",
    ),
    Script(
        "policy",
        "policy_datapath.py",
        ("--control-plane-only",),
        ("--quick",),
        "policy_datapath.json",
        passthrough("policy"),
        600,
        "bench/policy_datapath.py is not in the tree",
    ),
    Script(
        "services",
        "service_lb.py",
        (),
        ("--quick",),
        "service_lb.json",
        passthrough("services"),
        600,
        "bench/service_lb.py is not in the tree",
    ),
    Script(
        "nodeport",
        "nodeport.py",
        (),
        ("--quick",),
        "nodeport.json",
        passthrough("nodeport"),
        900,
        "bench/nodeport.py is not in the tree (the NodePort benchmark of issue 4)",
    ),
    Script(
        "observer",
        "observer_events.py",
        (),
        ("--quick",),
        "observer_events.json",
        passthrough("observer"),
        1800,  # its last part waits for the lab lock behind any lab test
        "bench/observer_events.py is not in the tree",
        lab_held_args=("--no-lab",),
    ),
    Script(
        "micro",
        "datapath_micro.py",
        (),
        ("--quick",),
        "datapath_micro.json",
        passthrough("micro"),
        300,
        "bench/datapath_micro.py is not in the tree",
    ),
)


def run_script(script: Script, quick: bool, lab_lock_held: bool, say: Say) -> FamilyResult:
    path = BENCH_DIR / script.path
    if not path.is_file():
        return FamilyResult(unavailable=[Unavailable(script.family, script.path, script.missing)])
    with tempfile.TemporaryDirectory(prefix="axb-run-") as tmp:
        cmd: Sequence[str] = [
            sys.executable,
            str(path),
            *script.args,
            *(script.quick_args if quick else ()),
            *(script.lab_held_args if lab_lock_held else ()),
            "--out",
            tmp,
        ]
        say(f"  {' '.join(cmd[1:])}")
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, check=False, timeout=script.timeout
            )
        except subprocess.TimeoutExpired:
            return _failed(script, f"did not finish in {script.timeout:.0f} s")
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip())[-600:]
            return _failed(script, f"exit status {proc.returncode}: {tail}")
        try:
            data = json.loads((Path(tmp) / script.output).read_text())
            result = script.convert(data, script.family)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return _failed(script, f"unreadable results {script.output}: {exc!r}")
    if not result.rows:
        result.failures.append(Failure(script.family, script.path, "no rows in its results"))
    return result


def _failed(script: Script, error: str) -> FamilyResult:
    return FamilyResult(failures=[Failure(script.family, script.path, error)])
