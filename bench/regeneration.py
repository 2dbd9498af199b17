"""The agent's regeneration after a new identity: full (every endpoint resolved) vs
incremental (only the affected ones), through ``Enforcement.regenerate`` itself.

The cluster is ``policy_datapath.make_cluster`` (E endpoints x R rules, 2,000 app
identities), loaded into a real ``Enforcement`` with an in-memory store and the
in-memory datapath (``FakeDatapath``: no kernel, so the numbers are the control
plane's: resolve, ``mapstate.build`` and the diff). For each of N new identities
(an existing app with one more label, so the policies that select that app's peers
change), the incremental pass is timed, then a full pass over the same state
(``Enforcement`` told to forget what it resolved), which must give the same result.

Run: ``.venv/bin/python bench/regeneration.py [--endpoints 1000 --rules 1000 --arrivals 3]``;
from another script: ``regeneration.run_bench(endpoints, rules, arrivals)``. No root needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from policy_datapath import make_cluster, pod_labels

from axoneme.agent.enforcement import Enforcement
from axoneme.datapath.fake import FakeDatapath, FakeDriver
from axoneme.endpoint.manager import EndpointManager, PodInfo
from axoneme.store.memory import MemoryStore

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


async def _measure(endpoints: int, rules: int, arrivals: int, state_dir: Path) -> dict[str, Any]:
    cluster = make_cluster(endpoints, rules)
    manager = EndpointManager(state_dir / "state.json", "10.96.0.0/20", FakeDriver())
    enf = Enforcement("node1", MemoryStore(), manager, FakeDatapath())
    enf.synced.set()
    for ident, labels in cluster.identities.items():
        enf._identity_changed("add", ident, labels)
    for k, policy in enumerate(cluster.policies):
        enf.policies[("CiliumNetworkPolicy", policy.namespace, f"p{k}")] = (policy,)
    for ref in cluster.endpoints:
        ep = manager.add(f"c{ref.id}", "eth0", f"/run/netns/b{ref.id}",
                         PodInfo("", f"p{ref.id}", {}, ref.identity))  # fmt: skip
        enf._ep_labels[ep.id] = ref.labels
    started = time.perf_counter()
    first = await enf.regenerate()
    first_ms = (time.perf_counter() - started) * 1e3
    incremental, full, resolved = [], [], []
    for i in range(arrivals):
        n, a = (3 + i * 3) % 10, (5 + i * 7) % 200
        labels = pod_labels(f"ns-{n}", f"app-{a}", **{"pod-template-hash": f"v{i + 2}"})
        enf._identity_changed("add", 60_000 + i, labels)
        t0 = time.perf_counter()
        stats = await enf.regenerate()
        incremental.append((time.perf_counter() - t0) * 1e3)
        resolved.append(stats.resolved)
        kept = {k: replace(v, revision=0) for k, v in enf.endpoint_policies.items()}
        enf._resolved_settings = None  # forget: the next pass resolves everything
        t0 = time.perf_counter()
        await enf.regenerate()
        full.append((time.perf_counter() - t0) * 1e3)
        again = {k: replace(v, revision=0) for k, v in enf.endpoint_policies.items()}
        if again != kept:
            raise AssertionError("the incremental pass differs from a full one")
    return {
        "endpoints": first.endpoints,
        "rules": rules,
        "first_regeneration_ms": round(first_ms, 1),
        "incremental_ms": [round(x, 1) for x in incremental],
        "full_ms": [round(x, 1) for x in full],
        "incremental_median_ms": round(statistics.median(incremental), 1),
        "full_median_ms": round(statistics.median(full), 1),
        "resolved_endpoints": resolved,
    }


def run_bench(
    endpoints: int = 1000, rules: int = 1000, arrivals: int = 3, out: Path | None = DEFAULT_OUT
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="axb-regen-") as tmp:
        report = asyncio.run(_measure(endpoints, rules, arrivals, Path(tmp)))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "regeneration.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoints", type=int, default=1000)
    p.add_argument("--rules", type=int, default=1000)
    p.add_argument("--arrivals", type=int, default=3)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if min(args.endpoints, args.rules, args.arrivals) < 1:
        print(
            "regeneration: --endpoints, --rules and --arrivals must be at least 1", file=sys.stderr
        )
        return 2
    print(json.dumps(run_bench(args.endpoints, args.rules, args.arrivals, args.out), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
