"""``make bench``: every benchmark family in one run, written to ``bench/results/latest.*``.

Families, in the order they run:

- ``datapath``: the reference document's qperf matrix (node-to-node, pod-to-pod,
  pod-to-Service and external-to-NodePort, same and other node) on each datapath: plain
  kernel routing without programs (the limit), Axoneme tunnel, native routing and BPF
  host-routing (each a 2-node ``axoneme lab``), and iptables + kube-proxy rules;
  interleaved, medians over the rounds, ratios to the limit (:mod:`suite.matrix`).
- ``identity``: a new pod identity on node2 until node1's ipcache has it (:mod:`suite.identity`).
- ``cni``: ``cni_latency.py`` (axoneme-cni vs bridge + host-local).
- ``policy``: ``policy_datapath.py --control-plane-only`` (compute and program policy
  for 1,000 endpoints x 1,000 rules; a new identity to updated maps).
- ``services``: ``service_lb.py`` (socket LB vs kube-proxy iptables rules at 10/1k/10k
  Services: programming time and connection latency).
- ``nodeport``: ``nodeport.py`` (external client to NodePort, tc vs XDP vs kube-proxy).
- ``observer``: ``observer_events.py`` (ring events read without loss, flows decoded for
  a follower, drop-to-screen latency through ``axoneme observe``; it takes the lab lock
  itself for that last part).
- ``micro``: ``datapath_micro.py`` (the endpoint program's ns per packet on its main
  paths by ``BPF_PROG_TEST_RUN``, and map write rates from Python).

A family whose feature is not in the tree is listed as "not available: <reason>" in
``latest.md`` and under ``unavailable`` in ``latest.json``, never as a number. Exit status:
0 everything available was measured, 1 a measurement failed (results are written all the
same, failures listed), 2 usage or missing prerequisites, 130 interrupted.

The lab families (datapath, identity) run holding the lab lock
(``/run/axoneme-test.lock``: labs come up and go down, and ``lab down`` removes any lab)
and, taken first, the benchmarks' lock (``/run/axb-bench.lock``); the script families
then run without them (each script locks for itself).
Clean-up (qperf processes, ``axb-m-*`` namespaces, the lab) runs on every exit path.

Run as root: ``.venv/bin/python bench/run.py [--quick] [--out DIR] [--family NAME ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from common import commit_of_tree, guarded_run, pids_marked
from suite import identity, labnet, markdown, matrix, plainnet, scripts
from suite.flows import DATAPATHS
from suite.qperf import TESTS
from suite.results import Failure, FamilyResult, Unavailable, report_problems

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results"
QUICK_OUT = Path("/tmp/axoneme-bench-quick")
LAB_LOCK = Path("/run/axoneme-test.lock")
BENCH_LOCK = Path("/run/axb-bench.lock")  # the scripts' lock: our axb-m-* namespaces too
FAMILIES = (
    "datapath",
    "identity",
    "cni",
    "policy",
    "services",
    "nodeport",
    "observer",
    "micro",
)
# Families that bring labs up (the lab lock) and make axb-m-* namespaces (the bench lock).
LAB_FAMILIES = frozenset({"datapath", "identity"})

Say = Callable[[str], None]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round, small scales")
    p.add_argument("--rounds", type=int, help="data path rounds (default 3, quick 1)")
    p.add_argument("--time", type=int, help="qperf -t seconds per test (default 1)")
    p.add_argument(
        "--services", type=int, help="other Services in the kube-proxy rules (default 1000)"
    )
    p.add_argument("--pods", type=int, help="identity propagation: pods (default 5, quick 2)")
    p.add_argument(
        "--family",
        action="append",
        choices=FAMILIES,
        help="run only this family (repeatable; default all)",
    )
    p.add_argument(
        "--datapath",
        action="append",
        choices=DATAPATHS,
        help="data path family: only this datapath (repeatable; default all)",
    )
    p.add_argument("--out", type=Path, help=f"default {DEFAULT_OUT} ({QUICK_OUT} with --quick)")
    p.add_argument(
        "--lab-lock-held",
        action="store_true",
        help=f"the caller holds {LAB_LOCK} already (the test suite): do not take it",
    )
    args = p.parse_args(argv)
    for name, full, quick in (
        ("rounds", 3, 1),
        ("time", 1, 1),
        ("services", 1000, 100),
        ("pods", 5, 2),
    ):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.out is None:
        args.out = QUICK_OUT if args.quick else DEFAULT_OUT
    if not 1 <= args.rounds <= 20 or not 1 <= args.time <= 60 or not 1 <= args.pods <= 50:
        p.error("--rounds must be in 1..20, --time in 1..60, --pods in 1..50")
    if not 0 <= args.services <= 60_000:
        p.error("--services must be in 0..60000")
    args.family = tuple(dict.fromkeys(args.family or FAMILIES))
    args.datapath = tuple(dict.fromkeys(args.datapath or DATAPATHS))
    if "datapath" in args.family and "limit" not in args.datapath:
        args.datapath = ("limit", *args.datapath)  # every ratio divides by it
    return args


def prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, BPF, the lab)"
    for tool in ("ip", "qperf", "nsenter", "etcd"):
        if shutil.which(tool) is None:
            return f"needs {tool} on PATH (make deps installs it)"
    return None


# --- the families -------------------------------------------------------------------------


def _script(name: str) -> Callable[[argparse.Namespace, Say], FamilyResult]:
    script = next((s for s in scripts.SCRIPTS if s.family == name), None)

    def run(args: argparse.Namespace, say: Say) -> FamilyResult:
        if script is None:
            return FamilyResult(unavailable=[_missing(name)])
        return scripts.run_script(script, args.quick, args.lab_lock_held, say)

    return run


MISSING: dict[str, str] = {}


def _missing(name: str) -> Unavailable:
    return Unavailable(name, name, MISSING.get(name, "no benchmark for it in bench/"))


def _datapath(args: argparse.Namespace, say: Say) -> FamilyResult:
    settings = matrix.Settings(args.rounds, args.time, args.services, args.datapath)
    # The standalone scripts delete every axb-* namespace when they start: serialise.
    return matrix.run(settings, say)


def _identity(args: argparse.Namespace, say: Say) -> FamilyResult:
    return identity.run(args.pods, say)


RUNNERS: dict[str, Callable[[argparse.Namespace, Say], FamilyResult]] = {
    "datapath": _datapath,
    "identity": _identity,
    "cni": _script("cni"),
    "policy": _script("policy"),
    "services": _script("services"),
    "nodeport": _script("nodeport"),
    "observer": _script("observer"),
    "micro": _script("micro"),
}


# --- plumbing ---------------------------------------------------------------------------


def _lock(path: Path, blocking: bool) -> IO[str] | None:
    """An exclusive flock on ``path``: the open file holding it, or None if busy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "w")  # noqa: SIM115 (the caller closes it to release the lock)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        f.close()
        return None
    return f


@contextlib.contextmanager
def lab_and_bench_locks(lab_lock_held: bool, say: Say) -> Iterator[None]:
    """Hold the benchmarks' lock (no other benchmark competes for the CPUs while we
    measure), then the lab lock.

    In that order: waiting for the lab while holding the benchmarks' lock delays only
    other benchmarks (run by hand, rarely), where the other order would hold up every
    lab test while another benchmark runs. A caller that holds the lab lock already
    (the test, which asserts no timing) gets no benchmarks' lock: it would wait for it
    while holding the lab.
    """
    if lab_lock_held:
        yield
        return
    bench = _lock(BENCH_LOCK, blocking=False)
    if bench is None:
        say(f"waiting for {BENCH_LOCK} (another benchmark runs)")
        bench = _lock(BENCH_LOCK, blocking=True)
    try:
        lab = _lock(LAB_LOCK, blocking=False)
        if lab is None:
            say(f"waiting for {LAB_LOCK} (lab tests run)")
            lab = _lock(LAB_LOCK, blocking=True)
        try:
            yield
        finally:
            if lab is not None:
                lab.close()
    finally:
        if bench is not None:
            bench.close()


def cleanup() -> list[str]:
    """Stop what the run started; what was still there (empty when clean)."""
    problems = []
    pids = pids_marked(matrix.PROC_MARK.encode())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        problems.append(f"qperf process {pid} had to be killed")
    plainnet.teardown()
    if plainnet.existing():
        problems.append(f"namespaces left: {plainnet.existing()}")
    problems += labnet.down()
    return problems


def _version(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "?"
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "?"


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "iptables": _version(["iptables-nft", "-V"]),
        "qperf": _version(["qperf", "--version"]),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        info["mem_total_kb"] = int(Path("/proc/meminfo").read_text().split()[1])
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
    except (OSError, ValueError, IndexError):
        pass
    commit = commit_of_tree()
    if commit is not None:
        info["axoneme_commit"] = commit
    # The tree is shared while others work: say whether it matched the commit.
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    if dirty.returncode == 0:
        info["axoneme_tree_modified"] = bool(dirty.stdout.strip())
    return info


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def build_report(
    args: argparse.Namespace,
    total: FamilyResult,
    notes: list[dict[str, str]],
    load_start: str,
    started: float,
    waited: float,
    family_seconds: dict[str, float],
) -> dict[str, Any]:
    machine = machine_info()
    return {
        "benchmark": "axoneme-bench",
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kernel": machine["kernel"],
        "machine": machine,
        "config": {
            "quick": args.quick,
            "families": list(args.family),
            "datapaths": list(args.datapath),
            "rounds": args.rounds,
            "qperf_seconds": args.time,
            "qperf": f"qperf -lp PORT -ip PORT+1 -t {args.time} <ip> -ub -oo msg_size:4K "
            f"-vu {' '.join(TESTS)}",
            "kube_proxy_services": args.services,
            "identity_pods": args.pods,
        },
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        # The time measuring took: the time spent waiting for the locks is not in it.
        "wall_seconds": round(time.monotonic() - started - waited, 1),
        "lock_wait_seconds": round(waited, 1),
        "rows": [r.as_json() for r in total.rows],
        "unavailable": [vars(u) for u in total.unavailable],
        "failures": [vars(f) for f in total.failures],
        "notes": notes,
        "family_seconds": family_seconds,
    }


def write(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "latest.md").write_text(markdown.render(report))


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = prerequisites()
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 2

    def say(msg: str) -> None:
        print(msg, flush=True)

    started = time.monotonic()
    total = FamilyResult()
    notes: list[dict[str, str]] = []
    load_start = loadavg()
    signal.signal(signal.SIGTERM, _terminate)

    seconds: dict[str, float] = {}

    def run_families(families: Sequence[str]) -> None:
        for family in families:
            say(f"{family}:")
            begun = time.monotonic()
            try:
                result = RUNNERS[family](args, say)
            except Exception as exc:  # one family failing must not lose the others
                result = FamilyResult(failures=[Failure(family, family, repr(exc)[:600])])
                say(f"  failed: {exc!r}")
            for u in result.unavailable:
                say(f"  {u.what}: not available: {u.reason}")
            total.extend(result)
            notes.extend({"family": family, "text": n} for n in result.notes)
            seconds[family] = round(time.monotonic() - begun, 1)

    status = 0
    waited = 0.0
    on_lab = [f for f in args.family if f in LAB_FAMILIES]
    if on_lab:
        try:
            asked = time.monotonic()
            with lab_and_bench_locks(args.lab_lock_held, say):
                waited = time.monotonic() - asked
                load_start = loadavg()  # once the machine is ours

                def body() -> None:
                    for problem in cleanup():  # what a killed earlier run left
                        say(f"bench: swept: {problem}")
                    run_families(on_lab)

                status = guarded_run("bench", body, cleanup, ())
        except KeyboardInterrupt:  # while waiting for a lock: nothing to clean
            status = 130
        if status == 130:
            return status
    # The scripts take the benchmarks' lock themselves and use no lab.
    scripted = [f for f in args.family if f not in LAB_FAMILIES]
    if scripted:
        status = max(status, guarded_run("bench", lambda: run_families(scripted), list, ()))
        if status == 130:
            return status
    report = build_report(args, total, notes, load_start, started, waited, seconds)
    problems = report_problems(report)
    if problems:  # a bug in a family, not a measurement: say it, write nothing
        print("bench: malformed results:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    write(args.out, report)
    say(f"\nwrote {args.out / 'latest.md'} and latest.json ({report['wall_seconds']:.0f} s)")
    if total.failures:
        say(f"{len(total.failures)} measurement(s) failed: see 'Failed' in latest.md")
    return 1 if total.failures or status else 0


if __name__ == "__main__":
    sys.exit(main())
