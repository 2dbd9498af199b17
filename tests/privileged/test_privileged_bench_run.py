"""``bench/run.py --quick`` (what ``make bench`` runs, at small scale) runs end to end,
writes well-formed results and leaves nothing behind.

Timings are never asserted (the machine is shared): only the shape of the results, that
every family either measured something or said why not, and that the data path rows
the tree can build are there with their ratios.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from axoneme.kit.procs import pids_marked
from axoneme.lab import control

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

from suite import flows, matrix, plainnet, qperf, results  # noqa: E402

pytestmark = [pytest.mark.lab, pytest.mark.slow]
FAMILIES = {"datapath", "identity", "cni", "policy", "services", "nodeport", "observer", "micro"}


@pytest.mark.timeout(900)
def test_quick_run_writes_well_formed_results_and_cleans_up(lab_lock: None, tmp_path: Path) -> None:
    control.down(grace=5.0)
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--quick",
            "--lab-lock-held",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    log = proc.stdout[-4000:] + proc.stderr[-4000:]
    # 1 is allowed: a measurement failed, and it is listed (checked below).
    assert proc.returncode in (0, 1), log
    report = json.loads((tmp_path / "latest.json").read_text())
    assert results.report_problems(report) == [], log
    assert report["kernel"] == os.uname().release
    assert report["config"]["quick"] is True and report["config"]["rounds"] == 1
    assert (proc.returncode == 1) == bool(report["failures"]), log

    # Every family measured something, or says why it could not.
    for family in FAMILIES:
        measured = any(r["family"] == family for r in report["rows"])
        explained = any(x["family"] == family for x in report["unavailable"] + report["failures"])
        assert measured or explained, family

    # The limit and the reference dataplane need nothing from the tree but the kernel:
    # every flow they run is there, with all five columns, from one run.
    rows = {(r["datapath"], r["scenario"], r["metric"]): r for r in report["rows"]}
    for datapath in (flows.LIMIT, "iptables-kube-proxy"):
        for flow in flows.flows_for(datapath):
            for metric, unit in qperf.METRICS.items():
                r = rows.get((datapath, flow.name, metric))
                assert r is not None, (datapath, flow.name, metric, log)
                assert r["unit"] == unit and r["runs"] == 1 and r["family"] == "datapath"
                assert r["ratio_to_limit"] is not None
    # Axoneme's rows divide by the limit's same path.
    for (datapath, scenario, metric), r in rows.items():
        if r["family"] == "datapath" and datapath != flows.LIMIT:
            base = rows[(flows.LIMIT, flows.limit_flow(scenario), metric)]
            assert r["ratio_to_limit"] == pytest.approx(r["median"] / base["median"], rel=0.01)
    # A datapath the tree has is measured or explained flow by flow.
    for datapath in ("axoneme-tunnel", "axoneme-native", "axoneme-host-routing"):
        for flow in flows.flows_for(datapath):
            what = f"{datapath} / {flow.name}"
            assert (
                (datapath, flow.name, "tcp_lat") in rows
                or any(x["what"] in (what, datapath) for x in report["unavailable"])
                or any(x["what"].startswith(datapath) for x in report["failures"])
            ), what

    md = (tmp_path / "latest.md").read_text()
    assert "| Flow | tcp_lat | udp_lat | tcp_bw | udp_send_bw | udp_recv_bw |" in md
    for u in report["unavailable"]:
        assert f"- {u['what']}: not available: {u['reason']}" in md

    # Nothing left: no qperf, no bench namespaces, no lab.
    assert pids_marked(matrix.PROC_MARK.encode()) == []
    assert plainnet.existing() == []
    assert control.leftovers().empty, control.leftovers()
