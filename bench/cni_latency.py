"""CNI ADD/DEL latency: Axoneme's ``axoneme-cni`` versus Debian's ``bridge`` + ``host-local``.

Both plugins do the same job for each pod: a veth pair with one end as ``eth0`` in
the pod's netns, an IPv4 address on it and a default route. They run side by side
in one process, interleaved call by call, so drift on the machine hits both alike.

Method (as ``cni-runtime-feasibility.md`` §4):

- Each plugin is exec'ed the way a runtime does it: ``subprocess.run([plugin])``,
  config JSON on stdin, stdout/stderr captured, an env of ``PATH`` plus ``CNI_*``.
  Wall time is ``perf_counter_ns`` around fork+exec+wait; CPU is the
  ``RUSAGE_CHILDREN`` delta (the plugin and the children it waited for, such as
  ``host-local``). The agent's CPU is read from ``/proc`` per phase.
- Nothing runs in the machine's own netns. Each side has a "node" netns:
  ``axb-node`` (the Axoneme agent runs there, so the host veth ends land there) and
  ``axb-bnode`` (holding the pre-created bridge ``axbbr0``, 10.78.0.1/24). Each
  side's plugins are exec'ed from a harness thread that joined its node netns once
  with ``setns`` when it started, so neither side pays for entering a namespace.
- A round: create ``--pods`` pod netns per side (``axb-pod-N`` for Axoneme,
  ``axb-bpod-N`` for bridge; not timed), ADD pod by pod alternating the plugins,
  check every pod (``eth0`` address in the subnet, default route; not timed), DEL
  pod by pod alternating again (netns still present), check nothing is left on
  the node side, delete the pod netns. The plugin that goes first alternates
  between rounds. Warm-up calls before the first round are not counted.
- Median is over all samples of all rounds; p99 is nearest-rank.

Run as root: ``.venv/bin/python bench/cni_latency.py [--quick] [--out DIR]``.
Results go to ``DIR/cni_latency.json`` and ``DIR/cni_latency.md`` (default
``bench/results``). Exit status: 0 success, 1 a plugin call or a check failed (or
clean-up left something), 2 usage or missing prerequisites, 130 interrupted.
Clean-up (agent killed, every ``axb-*`` netns deleted, scratch dir removed) runs on
every exit path, and a run first removes what a killed earlier run left behind.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import datetime
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import commit_of_tree, exclusive_run, guarded_run, pids_marked

from axoneme.api.client import AgentAPIError, AgentClient, AgentUnavailableError
from axoneme.cni.install import write_launcher

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
DEFAULT_OUT = REPO / "bench" / "results"
CNI_DIR = Path("/usr/lib/cni")

PREFIX = "axb-"
NODE_NS = "axb-node"
BPF_PIN_DIR = Path("/sys/fs/bpf/axb-cni-bench")  # the agent's datapath pins
BNODE_NS = "axb-bnode"
BRIDGE = "axbbr0"
AX_CIDR = "10.77.0.0/24"
BR_CIDR = "10.78.0.0/24"
BR_GATEWAY = "10.78.0.1"
IFNAME = "eth0"
PLUGIN_PATH_ENV = "/usr/sbin:/usr/bin:/sbin:/bin"
LOCK_FILE = Path("/run/axb-bench.lock")
SCRATCH_MARK = ".axb-bench"
# Set in the agent's environment: how a later run finds an agent a killed run left.
PROC_MARK = b"AXB_BENCH=cni_latency"
AGENT_READY_S = 30.0
CALL_TIMEOUT_S = 60.0

AXONEME, BRIDGE_PLUGIN = "axoneme-cni", "bridge"
OPS = ("ADD", "DEL")

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class BenchError(Exception):
    """A plugin call or a check failed: the run is invalid."""


# --- small helpers ----------------------------------------------------------------------


def ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise BenchError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def ip_batch(lines: list[str], check: bool = True, netns: str = "") -> None:
    if not lines:
        return
    where = ["-n", netns] if netns else []
    # -force: go on past a failed line (clean-up); the exit status still reports it.
    proc = subprocess.run(
        ["ip", *where, *([] if check else ["-force"]), "-batch", "-"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        raise BenchError(f"ip -batch ({lines[0]} ...): {proc.stderr.strip()}")


def ip_json(*args: str) -> list[dict[str, Any]]:
    out = ip("-j", *args)
    return json.loads(out) if out.strip() else []


def our_netns() -> list[str]:
    """This benchmark's namespaces only (other benchmarks use other ``axb-`` names)."""
    run_dir = Path("/run/netns")
    names = os.listdir(run_dir) if run_dir.is_dir() else []
    mine = (f"{PREFIX}pod-", f"{PREFIX}bpod-")
    return sorted(n for n in names if n in (NODE_NS, BNODE_NS) or n.startswith(mine))


def marked_pids() -> list[int]:
    return pids_marked(PROC_MARK)


def proc_cpu_ms(pid: int) -> float:
    """utime + stime of a live process, in ms (clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


def join_netns(path: str) -> None:
    """Move the calling thread into the netns at ``path`` for good (thread initializer)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def thread_netns_inode() -> int:
    return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino


def nearest_rank(sorted_values: list[float], q: float) -> float:
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


# --- plugins and samples ----------------------------------------------------------------


@dataclass
class Call:
    wall_ms: float
    cpu_ms: float
    returncode: int
    stdout: bytes
    stderr: bytes


def timed_exec(exe: str, env: dict[str, str], stdin: bytes) -> Call:
    """One plugin invocation as a runtime makes it; runs on the side's harness thread."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter_ns()
    proc = subprocess.run(
        [exe], input=stdin, env=env, capture_output=True, check=False, timeout=CALL_TIMEOUT_S
    )
    wall = time.perf_counter_ns() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Call(wall / 1e6, cpu * 1000.0, proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Plugin:
    name: str
    exe: str
    config: bytes
    cni_path: str
    node_ns: str
    pod_prefix: str
    subnet_prefix: str  # the pod address must start with this ("10.77.0.")
    runner: concurrent.futures.ThreadPoolExecutor | None = None
    wall: dict[str, list[list[float]]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    agent_cpu: dict[str, list[float]] = field(default_factory=dict)

    def pod_ns(self, index: int | str) -> str:
        return f"{self.pod_prefix}{index}"

    def start_runner(self) -> None:
        path = f"/run/netns/{self.node_ns}"
        self.runner = concurrent.futures.ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix=f"exec-{self.node_ns}",
            initializer=join_netns,
            initargs=(path,),
        )
        where = self.runner.submit(thread_netns_inode).result()
        if where != os.stat(path).st_ino:
            raise BenchError(f"{self.name}: harness thread is not in {self.node_ns}")

    def invoke(self, op: str, container_id: str, pod: str) -> Call:
        env = {
            "PATH": PLUGIN_PATH_ENV,
            "CNI_COMMAND": op,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": f"/run/netns/{pod}",
            "CNI_IFNAME": IFNAME,
            "CNI_PATH": self.cni_path,
        }
        assert self.runner is not None
        call = self.runner.submit(timed_exec, self.exe, env, self.config).result()
        if call.returncode != 0:
            raise BenchError(
                f"{self.name} {op} {container_id} ({pod}) exited {call.returncode}: "
                f"{(call.stdout + call.stderr).decode(errors='replace').strip()[-800:]}"
            )
        if op == "ADD":
            self._check_add_result(call, container_id)
        return call

    def _check_add_result(self, call: Call, container_id: str) -> None:
        try:
            result = json.loads(call.stdout)
            addresses = [str(entry["address"]) for entry in result["ips"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(
                f"{self.name} ADD {container_id}: bad result {call.stdout[:300]!r}: {exc}"
            ) from None
        if not any(a.startswith(self.subnet_prefix) for a in addresses):
            raise BenchError(f"{self.name} ADD {container_id}: result ips {addresses}")


# --- the benchmark ----------------------------------------------------------------------


class Bench:
    def __init__(self, pods: int, rounds: int, warmup: int) -> None:
        self.pods = pods
        self.rounds = rounds
        self.warmup = warmup
        self.scratch: Path | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.agent_log: Path | None = None
        self.plugins: list[Plugin] = []
        self.floors: list[dict[str, Any]] = []

    # setup ------------------------------------------------------------------------------

    def sweep_stale(self) -> list[str]:
        """Remove what a killed earlier run left (we hold the lock: nothing here is live)."""
        done = []
        for pid in marked_pids():
            try:
                os.kill(pid, signal.SIGKILL)
                done.append(f"killed stale agent {pid}")
            except ProcessLookupError:
                pass
        stale = our_netns()
        ip_batch([f"netns del {n}" for n in stale], check=False)
        if stale:
            more = " ..." if len(stale) > 4 else ""
            done.append(f"deleted {len(stale)} stale netns: {' '.join(stale[:4])}{more}")
        for candidate in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
            if (candidate / SCRATCH_MARK).is_file():
                shutil.rmtree(candidate, ignore_errors=True)
                done.append(f"removed stale scratch {candidate}")
        return done

    def setup(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix=PREFIX, dir=tempfile.gettempdir()))
        (self.scratch / SCRATCH_MARK).write_text("bench/cni_latency.py scratch\n")
        ip_batch([f"netns add {NODE_NS}", f"netns add {BNODE_NS}"])
        ip("-n", NODE_NS, "link", "set", "lo", "up")
        ip_batch(
            [
                "link set lo up",
                f"link add {BRIDGE} type bridge",
                f"addr add {BR_GATEWAY}/24 dev {BRIDGE}",
                f"link set {BRIDGE} up",
            ],
            netns=BNODE_NS,
        )
        sock = self.start_agent()

        launcher = self.scratch / "bin" / "axoneme-cni"
        launcher.parent.mkdir()
        write_launcher(launcher, SRC)
        ax_config = {
            "cniVersion": "1.0.0",
            "name": "axoneme",
            "type": "axoneme-cni",
            "agentSocket": str(sock),
        }
        (self.scratch / "ipam").mkdir()
        br_config = {
            "cniVersion": "1.0.0",
            "name": "axb-bridge",
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": False,  # True would set ip_forward (feasibility doc, pitfall 4)
            "ipMasq": False,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": BR_CIDR, "gateway": BR_GATEWAY}]],
                "routes": [{"dst": "0.0.0.0/0"}],  # via the range's gateway
                "dataDir": str(self.scratch / "ipam"),
            },
        }
        self.plugins = [
            Plugin(
                AXONEME,
                str(launcher),
                json.dumps(ax_config).encode(),
                str(launcher.parent),
                NODE_NS,
                f"{PREFIX}pod-",
                AX_CIDR.rsplit(".", 1)[0] + ".",
            ),
            Plugin(
                BRIDGE_PLUGIN,
                str(CNI_DIR / "bridge"),
                json.dumps(br_config).encode(),
                str(CNI_DIR),
                BNODE_NS,
                f"{PREFIX}bpod-",
                BR_CIDR.rsplit(".", 1)[0] + ".",
            ),
        ]
        for plugin in self.plugins:
            plugin.start_runner()
            plugin.wall = {op: [] for op in OPS}
            plugin.cpu = {op: [] for op in OPS}
            plugin.agent_cpu = {op: [] for op in OPS}

    def start_agent(self) -> Path:
        assert self.scratch is not None
        sock = self.scratch / "agent.sock"
        store = self.scratch / "store.json"
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "bench", "resourceVersion": "1"},
            "spec": {"podCIDR": AX_CIDR, "podCIDRs": [AX_CIDR]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.77.255.1"}]},
        }
        store.write_text(json.dumps({"revision": 1, "objects": [node]}))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
        key, _, value = PROC_MARK.decode().partition("=")
        env[key] = value
        self.agent_log = self.scratch / "agent.log"
        with open(self.agent_log, "wb") as log:
            # nsenter execs the interpreter (the PID we hold is the agent's) and,
            # unlike `ip netns exec`, keeps the machine's bpffs for the datapath pins.
            self.agent = subprocess.Popen(
                [
                    "nsenter",
                    f"--net=/run/netns/{NODE_NS}",
                    sys.executable,
                    "-m",
                    "axoneme.agent.daemon",
                    "--node",
                    "bench",
                    "--store",
                    f"embedded:{store}",
                    "--state-dir",
                    str(self.scratch / "state"),
                    "--socket",
                    str(sock),
                    "--bpf-pin-dir",
                    str(BPF_PIN_DIR),
                    "--no-ip-forward",  # as bridge's isGateway: false; forwarding is not timed
                    "--log-level",
                    "WARNING",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the harness; it stops the agent
            )
        client = AgentClient(sock, timeout=2.0)
        deadline = time.monotonic() + AGENT_READY_S
        while True:
            if self.agent.poll() is not None:
                raise BenchError(f"agent exited {self.agent.returncode}: {self.agent_log_tail()}")
            try:
                client.get("/v1/healthz")
                return sock
            except (AgentUnavailableError, AgentAPIError) as exc:
                if time.monotonic() > deadline:
                    raise BenchError(f"agent not ready after {AGENT_READY_S} s: {exc}") from None
            time.sleep(0.05)

    def agent_log_tail(self) -> str:
        if self.agent_log is None or not self.agent_log.exists():
            return ""
        return self.agent_log.read_text(errors="replace")[-1500:]

    # rounds -----------------------------------------------------------------------------

    def agent_cpu_ms(self) -> float:
        assert self.agent is not None
        if self.agent.poll() is not None:
            raise BenchError(f"agent died (exit {self.agent.returncode}): {self.agent_log_tail()}")
        return proc_cpu_ms(self.agent.pid)

    def phase(
        self, label: str, op: str, order: list[Plugin], pods: list[str], record: bool
    ) -> None:
        """One op on every pod, alternating plugins call by call."""
        agent_before = self.agent_cpu_ms()
        samples: dict[str, list[float]] = {p.name: [] for p in order}
        for pod in pods:
            for plugin in order:
                call = plugin.invoke(op, f"{label}-{plugin.name}-{pod}", plugin.pod_ns(pod))
                samples[plugin.name].append(call.wall_ms)
                if record:
                    plugin.cpu[op].append(call.cpu_ms)
        agent_used = self.agent_cpu_ms() - agent_before
        if record:
            for plugin in order:
                plugin.wall[op].append(samples[plugin.name])
                if plugin.name == AXONEME:
                    plugin.agent_cpu[op].append(agent_used / len(pods))

    def check_added(self, plugin: Plugin, pods: list[str]) -> None:
        """Every pod has eth0 up with an address in the subnet and a default route."""
        for pod in pods:
            ns = plugin.pod_ns(pod)
            addrs = [
                a["local"]
                for link in ip_json("-n", ns, "-4", "addr", "show", "dev", IFNAME)
                for a in link.get("addr_info", [])
                if "UP" in link.get("flags", [])
            ]
            if not any(a.startswith(plugin.subnet_prefix) for a in addrs):
                raise BenchError(f"{plugin.name}: {ns} {IFNAME} has no up address: {addrs}")
            default = ip_json("-n", ns, "-4", "route", "show", "default")
            if not any(r.get("dev") == IFNAME and r.get("gateway") for r in default):
                raise BenchError(f"{plugin.name}: {ns} has no default route via {IFNAME}")

    def check_deleted(self, plugin: Plugin) -> None:
        """Nothing of the deleted pods is left on the node side."""
        links = [link["ifname"] for link in ip_json("-n", plugin.node_ns, "link", "show")]
        if plugin.name == AXONEME:
            left = [n for n in links if n.startswith("lxc")]
        else:
            ports = ip_json("-n", plugin.node_ns, "link", "show", "master", BRIDGE)
            left = [link["ifname"] for link in ports]
            assert self.scratch is not None
            held = [
                f.name
                for f in (self.scratch / "ipam" / "axb-bridge").glob("*")
                if f.name[:1].isdigit()
            ]
            left += [f"host-local reservation {h}" for h in held]
        if left:
            raise BenchError(f"{plugin.name}: left after DEL in {plugin.node_ns}: {left}")

    def create_pods(self, pods: list[str]) -> None:
        ip_batch([f"netns add {p.pod_ns(pod)}" for p in self.plugins for pod in pods])

    def delete_pods(self, pods: list[str]) -> None:
        ip_batch([f"netns del {p.pod_ns(pod)}" for p in self.plugins for pod in pods])

    def measure_floors(self, count: int = 20) -> None:
        """Calibration, not part of the rows: fork+exec of /bin/true and each plugin's
        VERSION (process start, no work) from each harness thread, interleaved."""
        samples: dict[str, list[float]] = {}
        env = {"PATH": PLUGIN_PATH_ENV, "CNI_COMMAND": "VERSION"}
        for _ in range(count):
            for plugin in self.plugins:
                assert plugin.runner is not None
                for what, exe in (
                    ("/bin/true", "/bin/true"),
                    (f"{plugin.name} VERSION", plugin.exe),
                ):
                    call = plugin.runner.submit(timed_exec, exe, env, b'{"cniVersion":"1.0.0"}')
                    result = call.result()
                    if result.returncode != 0:
                        raise BenchError(f"{what} exited {result.returncode}")
                    samples.setdefault(f"{what} (from {plugin.node_ns})", []).append(result.wall_ms)
        self.floors = [
            {
                "what": what,
                "median_ms": round(statistics.median(values), 3),
                "p99_ms": round(nearest_rank(sorted(values), 0.99), 3),
                "samples": len(values),
            }
            for what, values in samples.items()
        ]

    def run(self, progress: Callable[[str], None]) -> None:
        if self.warmup:
            pods = [f"w{i}" for i in range(self.warmup)]
            self.create_pods(pods)
            self.phase("warm", "ADD", self.plugins, pods, record=False)
            self.phase("warm", "DEL", self.plugins, pods, record=False)
            self.delete_pods(pods)
        self.measure_floors()
        for rnd in range(self.rounds):
            order = self.plugins if rnd % 2 == 0 else self.plugins[::-1]
            pods = [str(i) for i in range(self.pods)]
            self.create_pods(pods)
            self.phase(f"r{rnd}", "ADD", order, pods, record=True)
            for plugin in order:
                self.check_added(plugin, pods)
            self.phase(f"r{rnd}", "DEL", order, pods, record=True)
            for plugin in order:
                self.check_deleted(plugin)
            self.delete_pods(pods)
            summary = ", ".join(
                f"{p.name} {op} {statistics.median(p.wall[op][-1]):.1f} ms"
                for op in OPS
                for p in self.plugins
            )
            progress(
                f"round {rnd + 1}/{self.rounds} ({' then '.join(p.name for p in order)}): {summary}"
            )

    # clean-up ---------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Undo everything; return what could not be undone (empty when clean)."""
        problems: list[str] = []
        for plugin in self.plugins:
            if plugin.runner is not None:
                plugin.runner.shutdown(wait=True, cancel_futures=True)
        if self.agent is not None and self.agent.poll() is None:
            self.agent.terminate()
            try:
                self.agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait(timeout=10)
        for pid in marked_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            problems.append(f"agent process {pid} had to be killed")
        ip_batch([f"netns del {n}" for n in our_netns()], check=False)
        # Unpinning is safe now: the pod devices the programs were attached to are gone.
        shutil.rmtree(BPF_PIN_DIR, ignore_errors=True)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
        # Verify.
        left_ns = our_netns()
        if left_ns:
            problems.append(f"netns left: {left_ns}")
        if marked_pids():
            problems.append(f"processes left: {marked_pids()}")
        if self.scratch is not None and self.scratch.exists():
            problems.append(f"scratch dir left: {self.scratch}")
        if BPF_PIN_DIR.exists():
            problems.append(f"pins left: {BPF_PIN_DIR}")
        return problems


# --- results ----------------------------------------------------------------------------


def summarize(plugins: list[Plugin]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = []
    for op in OPS:
        for plugin in plugins:
            rounds = plugin.wall[op]
            flat = sorted(v for r in rounds for v in r)
            row: dict[str, Any] = {
                "plugin": plugin.name,
                "op": op,
                "median_ms": round(statistics.median(flat), 3),
                "p99_ms": round(nearest_rank(flat, 0.99), 3),
                "runs": len(rounds),
                "samples": len(flat),
                "min_ms": round(flat[0], 3),
                "max_ms": round(flat[-1], 3),
                "mean_ms": round(statistics.fmean(flat), 3),
                "round_medians_ms": [round(statistics.median(r), 3) for r in rounds],
                "cpu_median_ms": round(statistics.median(plugin.cpu[op]), 3),
                "samples_ms": [[round(v, 3) for v in r] for r in rounds],
            }
            if plugin.agent_cpu[op]:
                row["agent_cpu_ms_per_call"] = round(statistics.fmean(plugin.agent_cpu[op]), 3)
            rows.append(row)
    by = {(r["plugin"], r["op"]): r for r in rows}
    ratios = [
        {
            "op": op,
            "median_ratio": round(
                by[AXONEME, op]["median_ms"] / by[BRIDGE_PLUGIN, op]["median_ms"], 3
            ),
            "p99_ratio": round(by[AXONEME, op]["p99_ms"] / by[BRIDGE_PLUGIN, op]["p99_ms"], 3),
        }
        for op in OPS
    ]
    return rows, ratios


def machine_info() -> dict[str, Any]:
    uname = platform.uname()
    info: dict[str, Any] = {
        "hostname": uname.node,
        "kernel": uname.release,
        "kernel_version": uname.version,
        "arch": uname.machine,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "plugin_interpreter": "/usr/bin/python3 -IS (axoneme.cni.install launcher)",
        "plugin_interpreter_version": subprocess.run(
            ["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_total_kb"] = int(line.split()[1])
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    dpkg = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins"],
        capture_output=True,
        text=True,
        check=False,
    )
    if dpkg.returncode == 0:
        info["containernetworking_plugins"] = dpkg.stdout.strip()
    commit = commit_of_tree()
    if commit is not None:
        info["axoneme_commit"] = commit
    return info


def table(rows: list[dict[str, Any]], ratios: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| op | plugin | median ms | p99 ms | per-round medians ms | plugin CPU ms | "
        "agent CPU ms/call | samples |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        agent = r.get("agent_cpu_ms_per_call")
        lines.append(
            f"| {r['op']} | {r['plugin']} | {r['median_ms']:.1f} | {r['p99_ms']:.1f} | "
            + "/".join(f"{m:.1f}" for m in r["round_medians_ms"])
            + f" | {r['cpu_median_ms']:.1f} | {'-' if agent is None else f'{agent:.1f}'} | "
            f"{r['runs']}x{r['samples'] // max(1, r['runs'])} |"
        )
    lines.append("")
    lines.append("| ratio axoneme/bridge | median | p99 |")
    lines.append("|---|---|---|")
    lines += [f"| {x['op']} | {x['median_ratio']:.2f} | {x['p99_ratio']:.2f} |" for x in ratios]
    return lines


def write_results(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cni_latency.json").write_text(json.dumps(report, indent=1) + "\n")
    m = report["machine"]
    cfg = report["config"]
    md = [
        "# CNI latency: axoneme-cni vs bridge + host-local",
        "",
        f"Run {report['created']} by `bench/cni_latency.py`"
        + (" `--quick`" if cfg["quick"] else "")
        + f": {cfg['rounds']} round(s) x {cfg['pods']} pods per plugin, "
        f"{cfg['warmup']} warm-up pods, calls interleaved. Machine: {m.get('os', '?')}, "
        f"kernel {m['kernel']}, {m['cpus']} CPUs ({m.get('cpu_model', '?')}), "
        f"containernetworking-plugins {m.get('containernetworking_plugins', '?')}, "
        f"axoneme {m.get('axoneme_commit', '?')}.",
        "",
        *table(report["rows"], report["ratios"]),
        "",
        "Wall time is fork+exec+wait of the plugin, as a runtime calls it (p99 nearest-rank "
        "over all samples). Plugin CPU is the plugin's process tree (`bridge` includes "
        "`host-local`); Axoneme's work happens in the agent, whose CPU is shown separately "
        "(clock-tick resolution, averaged per call). Method: `bench/README.md`.",
        "",
        "Calibration (process start only, same harness):",
        "",
        "| exec | median ms | p99 ms |",
        "|---|---|---|",
        *(f"| {f['what']} | {f['median_ms']:.1f} | {f['p99_ms']:.1f} |" for f in report["floors"]),
        "",
    ]
    (out / "cni_latency.md").write_text("\n".join(md))


# --- entry point ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 10 pods, 1 round, 1 warm-up")
    p.add_argument("--pods", type=int, help="pods per plugin per round (default 50)")
    p.add_argument("--rounds", type=int, help="rounds (default 3)")
    p.add_argument("--warmup", type=int, help="untimed warm-up pods per plugin (default 3)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    args = p.parse_args(argv)
    quick = args.quick
    args.pods = args.pods if args.pods is not None else (10 if quick else 50)
    args.rounds = args.rounds if args.rounds is not None else (1 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    if args.pods < 1 or args.rounds < 1 or args.warmup < 0 or args.pods > 200:
        p.error("need 1 <= --pods <= 200, --rounds >= 1, --warmup >= 0")
    return args


def prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth)"
    for tool in (CNI_DIR / "bridge", CNI_DIR / "host-local", Path("/usr/bin/python3")):
        if not os.access(tool, os.X_OK):
            return f"needs {tool} (apt-get install containernetworking-plugins python3)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = prerequisites()
    if problem:
        print(f"cni_latency: {problem}", file=sys.stderr)
        return 2

    def say(msg: str) -> None:
        print(msg, flush=True)

    with exclusive_run(LOCK_FILE, say):
        bench = Bench(args.pods, args.rounds, args.warmup)

        def body() -> None:
            for line in bench.sweep_stale():
                say(line)
            bench.setup()
            say(
                f"cni_latency: {args.rounds} round(s) x {args.pods} pods, "
                f"{args.warmup} warm-up, axoneme-cni in {NODE_NS} vs bridge in {BNODE_NS}"
            )
            bench.run(say)

        status = guarded_run("cni_latency", body, bench.cleanup, (BenchError,))
        if status != 0:
            return status

    rows, ratios = summarize(bench.plugins)
    report = {
        "benchmark": "cni_latency",
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {
            "quick": args.quick,
            "pods": args.pods,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "interleaved": "call by call; first plugin alternates per round",
            "axoneme": f"axoneme-cni launcher -> agent in netns {NODE_NS}, pod CIDR {AX_CIDR}",
            "bridge": f"bridge+host-local in netns {BNODE_NS}, {BRIDGE} {BR_GATEWAY}/24, "
            "isGateway false, default route via the range gateway",
        },
        "machine": machine_info(),
        "rows": rows,
        "ratios": ratios,
        "floors": bench.floors,
    }
    write_results(args.out, report)
    say("")
    for line in table(rows, ratios):
        say(line)
    say(f"\nwrote {args.out / 'cni_latency.json'} and {args.out / 'cni_latency.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
