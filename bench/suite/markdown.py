"""``latest.md``: the report's tables, from the report's JSON. Pure.

The data path tables have the reference document's shape (one table per datapath, one
line per flow, columns tcp_lat udp_lat tcp_bw udp_send_bw udp_recv_bw), followed by the
ratios to the limit, which are the headline. Every other family gets one generic table.
Whatever was not measured is listed with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from suite.flows import DATAPATHS, FLOWS, LIMIT
from suite.qperf import LOWER_IS_BETTER, METRICS

Report = Mapping[str, Any]

TITLES = {
    "datapath": "Data path: the reference qperf matrix",
    "cni": "Control plane: CNI ADD/DEL, axoneme-cni vs bridge + host-local",
    "policy": "Control plane: policy computation at scale",
    "identity": "Control plane: identity propagation across nodes",
    "services": "Services at 10 / 1k / 10k: programming time and connection latency",
    "nodeport": "NodePort from outside: tc vs XDP vs kube-proxy, connection latency",
    "observer": "Observer: events per second, flows per second, drop-to-screen latency",
    "micro": "Micro: endpoint program ns per packet, map writes per second",
}


def fmt(value: float, unit: str) -> str:
    if unit == "Mb/s" and value >= 1000:
        return f"{value / 1000:.3g} Gb/s"
    if unit == "us":
        return f"{value:.3g} us" if value < 1000 else f"{value:.0f} us"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _table(head: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        *("| " + " | ".join(line) + " |" for line in lines),
    ]


def datapath_section(report: Report) -> list[str]:
    rows = [r for r in report["rows"] if r["family"] == "datapath"]
    by = {(r["datapath"], r["scenario"], r["metric"]): r for r in rows}
    metrics = list(METRICS)
    flow_titles = {f.name: f.title for f in FLOWS}
    out: list[str] = []
    for datapath in DATAPATHS:
        present = [f.name for f in FLOWS if any((datapath, f.name, m) in by for m in metrics)]
        if not present:
            continue
        out += [f"**{datapath}**", ""]
        lines = []
        for flow in present:
            cells = [flow_titles[flow]]
            for m in metrics:
                r = by.get((datapath, flow, m))
                cells.append(fmt(r["median"], r["unit"]) if r else "—")
            lines.append(cells)
        out += [*_table(["Flow", *metrics], lines), ""]
    ratio_lines = []
    for datapath in DATAPATHS:
        if datapath == LIMIT:
            continue
        for f in FLOWS:
            cells = [f.title, datapath]
            found = False
            for m in metrics:
                r = by.get((datapath, f.name, m))
                found = found or r is not None
                cells.append(_ratio(r["ratio_to_limit"]) if r else "—")
            if found:
                ratio_lines.append(cells)
    if ratio_lines:
        out += [
            "**Ratios to the limit** (plain kernel routing, no programs, same path). "
            f"For {', '.join(sorted(LOWER_IS_BETTER))} lower is better; for the "
            "bandwidths higher is better.",
            "",
            *_table(["Flow", "datapath", *metrics], ratio_lines),
            "",
        ]
    return out


def generic_section(report: Report, family: str) -> list[str]:
    rows = [r for r in report["rows"] if r["family"] == family]
    if not rows:
        return []
    lines = [
        [
            r["scenario"],
            r["datapath"],
            r["metric"],
            fmt(r["median"], r["unit"]),
            str(r["runs"]),
            _ratio(r["ratio_to_limit"]) + (f" (vs {r['limit']})" if r.get("limit") else ""),
        ]
        for r in rows
    ]
    return [*_table(["scenario", "datapath", "metric", "median", "runs", "ratio"], lines), ""]


def render(report: Report) -> str:
    m, cfg = report["machine"], report["config"]
    out = [
        "# Axoneme benchmarks (`make bench`)",
        "",
        f"Run {report['created']} by `bench/run.py`"
        + (" `--quick`" if cfg.get("quick") else "")
        + f" in {report.get('wall_seconds', 0):.0f} s on {m.get('os', '?')}, kernel "
        f"{report['kernel']}, {m.get('cpus', '?')} CPUs ({m.get('cpu_model', '?')}), "
        f"axoneme {m.get('axoneme_commit', '?')}"
        + (" plus uncommitted changes" if m.get("axoneme_tree_modified") else "")
        + "; load average "
        f"{report.get('loadavg_start', '?')} at the start, {report.get('loadavg_end', '?')} "
        "at the end.",
        "",
        f"Data path: {cfg.get('rounds')} round(s), every datapath once per round in an order "
        f"rotated from round to round, each row the median over the rounds; "
        f"`{cfg.get('qperf', '')}`. Ratios are the headline; absolute figures are context "
        "(one shared 2-core VM, veth links).",
        "",
    ]
    families = [f for f in TITLES if f in cfg.get("families", TITLES)]
    took = report.get("family_seconds", {})
    for family in families:
        out += [f"## {TITLES[family]}", ""]
        if family in took:
            out += [f"({took[family]:.0f} s)", ""]
        body = datapath_section(report) if family == "datapath" else generic_section(report, family)
        out += body
        notes = [n for n in report.get("notes", []) if n["family"] == family]
        if notes:
            out += [*(f"- {n['text']}" for n in notes), ""]
        gone = [u for u in report["unavailable"] if u["family"] == family]
        if gone:
            out += ["Not measured:", ""]
            out += [f"- {u['what']}: not available: {u['reason']}" for u in gone]
            out.append("")
        failed: dict[tuple[str, str], int] = {}
        for f in report["failures"]:
            if f["family"] == family:
                key = (f["what"], f["error"])
                failed[key] = failed.get(key, 0) + 1
        if failed:
            # The same failure in every round is one line, with its count.
            out += ["Failed:", ""]
            out += [
                f"- {what}: {error}" + (f" ({n} times)" if n > 1 else "")
                for (what, error), n in failed.items()
            ]
            out.append("")
        if not body and not gone and not failed:
            out += ["Nothing measured.", ""]
    out += ["Method: `bench/README.md`.", ""]
    return "\n".join(out)
