"""``bench/observer_events.py --quick --no-lab`` runs end to end and leaves nothing behind.

Timings are not asserted (the machine is shared); only the shape of the results and
the accounting: every event produced was read or counted lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from privileged.bpfenv import REPO, require_datapath

pytestmark = [pytest.mark.privileged, pytest.mark.slow]


def test_observer_benchmark_quick(tmp_path: Path) -> None:
    require_datapath()
    before = {p.name for p in Path("/sys/fs/bpf").iterdir() if p.name.startswith("axb-observer")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench/observer_events.py"), "--quick", "--no-lab",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "observer_events.json").read_text())["rows"]
    scenarios = {(r["scenario"], r["metric"]) for r in rows}
    for rate in ("1M/s offered", "2M/s offered", "max"):
        assert (f"ring {rate}", "events read/s") in scenarios
        assert (f"ring {rate}", "events lost") in scenarios
    assert ("follower decode+enrich+filter", "flows/s") in scenarios
    assert ("follower decode+enrich+filter+protobuf", "flows/s") in scenarios
    for r in rows:
        assert r["runs"] == 1 and len(r["samples"]) == 1 and r["datapath"] == "axoneme"
        assert r["median"] > 0 or r["metric"] == "events lost"
        assert r["median"] >= 0 or r["metric"] != "events lost"
    assert "rounds without loss" in (tmp_path / "observer_events.md").read_text()
    after = {p.name for p in Path("/sys/fs/bpf").iterdir() if p.name.startswith("axb-observer")}
    assert after == before  # its pins are removed
