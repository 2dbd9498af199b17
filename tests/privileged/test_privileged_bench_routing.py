"""``bench/routing_datapath.py --quick`` runs end to end and leaves nothing behind, and
``bench/regeneration.py`` gives an incremental pass equal to a full one.

Timings are not asserted (the machine is shared): only the shape of the results and
that each setup took the path it names (its forwarding counters).
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
from privileged.bpfenv import require_datapath

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
METRICS = {"tcp_lat", "udp_lat", "tcp_bw", "udp_bw", "iperf3", "retransmits"}


def test_quick_routing_run_writes_results_and_cleans_up(tmp_path: Path) -> None:
    require_datapath()
    for tool in ("qperf", "iperf3"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (make deps installs it)")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "routing_datapath.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "routing_datapath.json").read_text())
    rows = {(r["scenario"], r["setup"]): r for r in data["rows"]}
    assert set(rows) == {
        ("same-node", "none"), ("same-node", "policy+stack"),
        ("same-node", "policy+redirect_peer"), ("cross-node", "node-to-node"),
        ("cross-node", "none"), ("cross-node", "native+legacy"), ("cross-node", "native+bpf"),
        ("cross-node", "tunnel+legacy"), ("cross-node", "tunnel+bpf"),
    }  # fmt: skip
    for row in rows.values():
        assert all(row[m]["median"] >= 0 for m in METRICS), row
        assert row["tcp_lat"]["median"] > 0 and row["tcp_bw"]["median"] > 0
    fwd = {k: set(r["forwarding"]) for k, r in rows.items()}
    assert "n1.redirect_peer" in fwd[("same-node", "policy+redirect_peer")]
    assert fwd[("same-node", "policy+stack")] == set()
    assert "n1.redirect_neigh" in fwd[("cross-node", "native+bpf")]
    assert {"n1.tunnel_tx", "n2.tunnel_rx"} <= fwd[("cross-node", "tunnel+legacy")]
    assert {"n1.tunnel_tx", "n2.redirect_peer"} <= fwd[("cross-node", "tunnel+bpf")]
    assert (tmp_path / "routing_datapath.md").read_text().startswith("# Routing datapath")
    # Nothing left: namespaces, pins, processes.
    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    assert not [n for n in netns if n.startswith("axb-r-")]
    assert not Path("/sys/fs/bpf/axb-routing").exists()
    assert pids_marked(b"AXB_BENCH=routing_datapath") == []


def test_regeneration_bench_incremental_equals_full(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "regeneration.py"), "--endpoints", "200", "--rules", "200",
         "--arrivals", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "regeneration.json").read_text())
    assert data["endpoints"] == 200 and len(data["incremental_ms"]) == 2
    assert all(0 < n < 200 for n in data["resolved_endpoints"])
