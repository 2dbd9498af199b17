"""``bench/policy_datapath.py --quick`` runs end to end and leaves nothing behind.

Timings are not asserted (the machine is shared); only the shape of the results:
every setup and metric is there with a positive median, and the control-plane
sections are filled in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from axoneme.kit.procs import pids_marked
from privileged.test_privileged_datapath_progrun import require_datapath

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "policy_datapath.py"
PIN_ROOT = Path("/sys/fs/bpf/axb-policy")
METRICS = {"tcp_lat", "udp_lat", "tcp_bw", "udp_bw", "udp_send_bw"}
DATAPATH_SCENARIO = "pod-to-pod, one node"


def _axb_netns() -> list[str]:
    run_dir = Path("/run/netns")
    names = os.listdir(run_dir) if run_dir.is_dir() else []
    return sorted(n for n in names if n.startswith("axb-"))


def _bench_processes() -> list[int]:
    """PIDs carrying the mark the benchmark puts in its qperf environment."""
    return pids_marked(b"AXB_BENCH=policy_datapath")


def test_quick_run_writes_results_and_cleans_up(privileged: None, tmp_path: Path) -> None:
    require_datapath()
    for tool in ("qperf", "iptables-nft-restore"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (apt-get install qperf iptables)")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    data = json.loads((tmp_path / "policy_datapath.json").read_text())
    assert data["machine"]["kernel"] == os.uname().release
    config = data["config"]
    assert config["quick"] is True and config["rounds"] == 1 and config["rules"] == 100
    setups = config["setups"]
    expected = {"none", "axoneme-bpf/100", "axoneme-bpf/1000", "iptables-nft/100",
                "iptables-nft/1000"}  # fmt: skip
    if shutil.which("iptables-legacy-restore"):
        expected |= {"iptables-legacy/100", "iptables-legacy/1000"}
    assert set(setups) == expected

    rows = data["rows"]
    for row in rows:
        assert {"scenario", "datapath", "metric", "median", "unit", "runs",
                "ratio_to_limit"} <= set(row), row  # fmt: skip

    dp = {(r["setup"], r["metric"]): r for r in rows if r["scenario"] == DATAPATH_SCENARIO}
    assert set(dp) == {(s, m) for s in setups for m in METRICS}
    for key, row in dp.items():
        assert row["runs"] == 1, key
        assert row["median"] > 0, key
        assert row["ratio_to_limit"] > 0, key
        if key[0] == "none":
            assert row["ratio_to_limit"] == 1.0, key

    program = {
        r["setup"]: r for r in rows if r["metric"] == "program_ms" and r["setup"] != "axoneme"
    }
    assert set(program) == set(setups) - {"none"}
    assert all(r["median"] > 0 for r in program.values())

    control = {r["metric"]: r for r in rows if r["scenario"].startswith("program policy")}
    for metric in ("resolve_ms", "build_ms", "compute_ms", "sync_policy_ms", "program_ms"):
        assert control[metric]["median"] > 0, metric
    assert control["policy_entries"]["median"] > 0
    assert control["axo_policy"]["median"] == control["policy_entries"]["median"]

    identity = {r["metric"]: r for r in rows if r["scenario"].startswith("new identity")}
    for metric in ("total_ms", "resolve_ms", "build_ms", "sync_policy_ms",
                   "full_regeneration_ms"):  # fmt: skip
        assert identity[metric]["median"] > 0, metric
    assert identity["total_ms"]["runs"] == 2
    assert identity["affected_endpoints"]["median"] > 0

    md = (tmp_path / "policy_datapath.md").read_text()
    assert all(s in md for s in setups)

    assert _axb_netns() == []
    assert _bench_processes() == []
    assert not PIN_ROOT.exists()
