"""``bench/cni_latency.py --quick`` runs end to end and leaves nothing behind.

Timings are not asserted (the machine is shared); only the shape of the results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from axoneme.kit.procs import pids_marked

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "cni_latency.py"
PLUGINS = {"axoneme-cni", "bridge"}
OPS = {"ADD", "DEL"}


def _axb_netns() -> list[str]:
    run_dir = Path("/run/netns")
    names = os.listdir(run_dir) if run_dir.is_dir() else []
    return sorted(n for n in names if n.startswith("axb-"))


def _bench_processes() -> list[int]:
    """PIDs carrying the mark the benchmark puts in its agent environment."""
    return pids_marked(b"AXB_BENCH=cni_latency")


def test_quick_run_writes_results_and_cleans_up(privileged: None, tmp_path: Path) -> None:
    for plugin in ("bridge", "host-local"):
        if not os.access(f"/usr/lib/cni/{plugin}", os.X_OK):
            pytest.skip(f"needs /usr/lib/cni/{plugin} (containernetworking-plugins)")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    data = json.loads((tmp_path / "cni_latency.json").read_text())
    assert data["machine"]["kernel"] == os.uname().release
    rows = {(row["plugin"], row["op"]): row for row in data["rows"]}
    assert set(rows) == {(p, op) for p in PLUGINS for op in OPS}
    assert len(data["rows"]) == 4
    for key, row in rows.items():
        assert row["runs"] == 1, key
        assert row["samples"] == 10, key
        assert row["median_ms"] > 0, key
        assert row["p99_ms"] >= row["median_ms"], key
    assert {r["op"] for r in data["ratios"]} == OPS
    assert all(r["median_ratio"] > 0 and r["p99_ratio"] > 0 for r in data["ratios"])
    md = (tmp_path / "cni_latency.md").read_text()
    assert "axoneme-cni" in md and "bridge" in md

    assert _axb_netns() == []
    assert _bench_processes() == []
