"""A private containerd for tests: start it in a scratch folder, drive it with ctr, stop it clean.

How to run containerd 1.6 + runc on a machine without systemd, and what it
leaves on the host, is in ``cni-runtime-feasibility.md`` §1 and §3. This module
applies it:

* **Config in scratch.** ``root``, ``state``, the gRPC and ttrpc sockets and the
  ``opt`` plugin path all live under ``scratch``; the CRI plugin is disabled
  (``ctr`` does not need it). ``ctr`` finds the daemon through
  ``CONTAINERD_ADDRESS`` (see :meth:`Containerd.env`).
* **Started in its own session** (``setsid(2)``, through ``start_new_session``),
  so a terminal's signals do not reach it. If ``lab_mark`` is set (the default),
  its environment carries the lab mark ``AXONEME_LAB=/run/axoneme-lab``; the
  shims inherit containerd's environment, so a crashed test's containerd and
  shims are swept by the next ``axoneme lab down`` (or ``lab up``, which runs
  ``down`` first). The consequence: start it *after* ``lab up``, and stop it
  before ``lab down``. ``ctr`` itself is a client and is not marked.
* **Stop** kills and deletes every task and container in every namespace, then
  stops containerd (SIGTERM, then SIGKILL), then kills whatever survived by
  its traces: shims that name our socket, processes left in container cgroups.
* **Host traces** that containerd, runc and libcni leave outside scratch are
  recorded before the start and removed at the stop, only if they did not
  exist before: ``/run/containerd`` (shim sockets, runc state, ctr FIFOs),
  ``/sys/fs/cgroup/*/<namespace>`` (runc's parent cgroups: ``rmdir``, and only
  once they have no child cgroup), and ``/var/lib/cni/results`` entries
  created while it ran (libcni's result cache, which ``ctr run -d`` never removes).

Nothing here removes a file or kills a process that existed before :meth:`start`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from axoneme.lab.topology import ENV_MARK, LAB_DIR

__all__ = [
    "CGROUP_ROOT",
    "CNI_CACHE_DIR",
    "RUN_DIR",
    "Containerd",
    "ContainerdError",
    "HostTraces",
    "config_text",
    "running",
]

RUN_DIR = Path("/run/containerd")
CNI_CACHE_DIR = Path("/var/lib/cni")
CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_NAMESPACE = "default"
_BINARIES = ("containerd", "ctr", "containerd-shim-runc-v2", "runc")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerdError(Exception):
    pass


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string for the characters paths use.
    return json.dumps(value)


def config_text(scratch: Path) -> str:
    """containerd 1.6 config (version 2) keeping every configurable path under ``scratch``."""
    return "\n".join(
        [
            "version = 2",
            f"root = {_toml_string(str(scratch / 'root'))}",
            f"state = {_toml_string(str(scratch / 'state'))}",
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
            "",
            "[grpc]",
            f"  address = {_toml_string(str(scratch / 'containerd.sock'))}",
            "",
            "[ttrpc]",
            f"  address = {_toml_string(str(scratch / 'containerd.sock.ttrpc'))}",
            "",
            "# Without this, containerd 1.6 creates /opt/containerd/{bin,lib}.",
            '[plugins."io.containerd.internal.v1.opt"]',
            f"  path = {_toml_string(str(scratch / 'opt'))}",
            "",
        ]
    )


def _cgroup_parents(namespace: str) -> list[Path]:
    """``/sys/fs/cgroup/<hierarchy>/<namespace>`` for every mounted hierarchy."""
    if not CGROUP_ROOT.is_dir():
        return []
    parents = []
    for hierarchy in sorted(CGROUP_ROOT.iterdir()):
        # cpu and cpuacct may be symlinks to a shared "cpu,cpuacct" mount: count it once.
        if hierarchy.is_symlink() or not hierarchy.is_dir():
            continue
        parents.append(hierarchy / namespace)
    return parents


@dataclass(frozen=True)
class HostTraces:
    """What existed, before the start, among the places containerd writes outside scratch."""

    run_dir: bool
    cni_dirs: dict[Path, bool]
    cni_results: frozenset[str]
    cgroup_parents: frozenset[Path]

    @classmethod
    def snapshot(cls, namespaces: Sequence[str]) -> HostTraces:
        results = CNI_CACHE_DIR / "results"
        return cls(
            run_dir=RUN_DIR.exists(),
            cni_dirs={CNI_CACHE_DIR: CNI_CACHE_DIR.exists(), results: results.exists()},
            cni_results=frozenset(os.listdir(results)) if results.is_dir() else frozenset(),
            cgroup_parents=frozenset(
                p for ns in namespaces for p in _cgroup_parents(ns) if p.exists()
            ),
        )


def _mountpoints_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in our mount namespace, deepest first."""
    prefix = str(path).rstrip("/") + "/"
    points = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            # Field 5 is the mount point, with blanks escaped as \040 and so on.
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(path) or point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat.rsplit(") ", 1)[1].startswith("Z")


def _kill_and_wait(pids: Sequence[int], grace: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
            time.sleep(0.05)
        pids = [p for p in pids if _pid_alive(p)]
        if not pids:
            return


@dataclass
class Containerd:
    """One private containerd; see the module docstring. Use :func:`running` for a ``with``."""

    scratch: Path
    lab_mark: bool = True
    namespaces: tuple[str, ...] = (DEFAULT_NAMESPACE,)
    start_timeout: float = 20.0
    pid: int | None = field(default=None, init=False)
    traces: HostTraces | None = field(default=None, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    # --- paths ------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.scratch / "config.toml"

    @property
    def address(self) -> Path:
        return self.scratch / "containerd.sock"

    @property
    def log_path(self) -> Path:
        return self.scratch / "containerd.log"

    def _search_path(self) -> str:
        # The shim and runc are found through containerd's PATH.
        base = os.environ.get("PATH") or _SYSTEM_PATH
        parts = base.split(":") + _SYSTEM_PATH.split(":")
        return ":".join(dict.fromkeys(p for p in parts if p))

    def env(self) -> dict[str, str]:
        """The environment for ``ctr`` (and for libcni's plugins, which ``ctr`` passes it to)."""
        env = {k: v for k, v in os.environ.items() if k != ENV_MARK}
        env["PATH"] = self._search_path()
        env["CONTAINERD_ADDRESS"] = str(self.address)
        return env

    def _daemon_env(self) -> dict[str, str]:
        env = self.env()
        env.pop("CONTAINERD_ADDRESS")
        if self.lab_mark:
            env[ENV_MARK] = str(LAB_DIR)
        return env

    # --- life cycle -------------------------------------------------------------------

    @staticmethod
    def missing_binaries() -> list[str]:
        path = ":".join([os.environ.get("PATH", ""), _SYSTEM_PATH])
        return [b for b in _BINARIES if shutil.which(b, path=path) is None]

    def start(self) -> None:
        if self.pid is not None:
            raise ContainerdError("already started")
        missing = self.missing_binaries()
        if missing:
            raise ContainerdError(f"not installed: {', '.join(missing)}")
        self.scratch.mkdir(parents=True, exist_ok=True)
        for name in ("root", "state", "opt"):
            if (self.scratch / name).exists():
                raise ContainerdError(f"{self.scratch / name} exists: scratch must be fresh")
        if len(str(self.address)) + len(".ttrpc") >= 108:
            raise ContainerdError(f"socket path too long for a unix socket: {self.address}")
        self.config_path.write_text(config_text(self.scratch))
        self.traces = HostTraces.snapshot(self.namespaces)
        containerd = shutil.which("containerd", path=self._search_path()) or "containerd"
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [containerd, "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self._daemon_env(),
                start_new_session=True,  # setsid(2) in the child
            )
        self.pid = self._proc.pid
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise ContainerdError(f"containerd exited at start up:\n{tail}")
            if self.address.exists():
                done = self.ctr("version", check=False, timeout=5.0)
                if done.returncode == 0:
                    return
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise ContainerdError(
                    f"containerd did not answer in {self.start_timeout}s:\n{tail}"
                )
            time.sleep(0.05)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def ctr(
        self,
        *args: str,
        namespace: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ctr [-n namespace] args…`` against this containerd; text output captured."""
        argv = ["ctr"] + (["-n", namespace] if namespace else []) + list(args)
        done = subprocess.run(
            argv,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise ContainerdError(
                f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}"
            )
        return done

    def _list(self, *args: str, namespace: str | None = None) -> list[str]:
        done = self.ctr(*args, namespace=namespace, check=False, timeout=15.0)
        return done.stdout.split() if done.returncode == 0 else []

    def _remove_all_containers(self) -> list[str]:
        actions = []
        namespaces = dict.fromkeys([*self.namespaces, *self._list("namespaces", "ls", "-q")])
        for ns in namespaces:
            for task in self._list("tasks", "ls", "-q", namespace=ns):
                # --force kills (SIGKILL) a running task, then deletes it.
                self.ctr("tasks", "rm", "-f", task, namespace=ns, check=False, timeout=30.0)
                actions.append(f"deleted task {ns}/{task}")
            containers = self._list("containers", "ls", "-q", namespace=ns)
            if containers:
                self.ctr("containers", "rm", *containers, namespace=ns, check=False, timeout=30.0)
                actions.append(f"deleted containers {ns}/{','.join(containers)}")
        return actions

    def shim_pids(self) -> list[int]:
        """Processes whose command line names our socket: the shims (and our containerd)."""
        needle = str(self.address).encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(needle in arg for arg in argv) and _pid_alive(int(entry)):
                pids.append(int(entry))
        return sorted(pids)

    def _container_cgroups(self) -> list[Path]:
        """Child cgroups of the namespace parents that did not exist before the start."""
        if self.traces is None:
            return []
        children = []
        for ns in self.namespaces:
            for parent in _cgroup_parents(ns):
                if parent in self.traces.cgroup_parents or not parent.is_dir():
                    continue
                children += [c for c in parent.iterdir() if c.is_dir()]
        return children

    def stop(self, grace: float = 10.0) -> list[str]:
        """Stop everything this containerd started and remove its host traces.

        Returns what had to be forced or removed, for a test's log. Safe to call twice.
        """
        actions: list[str] = []
        if self._proc is not None and self._proc.poll() is None:
            actions += self._remove_all_containers()
            self._proc.terminate()
            try:
                self._proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=grace)
                actions.append("containerd needed SIGKILL")
        shims = [p for p in self.shim_pids() if p != self.pid]
        if shims:
            _kill_and_wait(shims)
            actions.append(f"killed leftover shims {shims}")
        for cgroup in self._container_cgroups():
            with contextlib.suppress(OSError):
                pids = [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
                if pids:
                    _kill_and_wait(pids)
                    actions.append(f"killed container processes {pids} in {cgroup}")
        for point in _mountpoints_under(self.scratch):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
            actions.append(f"unmounted {point}")
        actions += self._remove_host_traces()
        for name in ("root", "state", "opt", "containerd.sock", "containerd.sock.ttrpc"):
            path = self.scratch / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self._proc = None
        return actions

    def _remove_host_traces(self) -> list[str]:
        traces = self.traces
        if traces is None:
            return []
        actions: list[str] = []
        # runc's parent cgroups: children first (runc removes them on delete; a
        # killed container's may remain), then the parent, rmdir only.
        for ns in self.namespaces:
            for parent in _cgroup_parents(ns):
                if parent in traces.cgroup_parents or not parent.is_dir():
                    continue
                for child in sorted(
                    (c for c in parent.iterdir() if c.is_dir()), key=lambda c: -len(str(c))
                ):
                    with contextlib.suppress(OSError):
                        child.rmdir()
                if any(c.is_dir() for c in parent.iterdir()):
                    actions.append(f"left {parent}: it still has child cgroups")
                    continue
                try:
                    parent.rmdir()
                except OSError as exc:
                    actions.append(f"cannot remove {parent}: {exc}")
        # libcni's result cache: only entries that appeared while we ran.
        results = CNI_CACHE_DIR / "results"
        if results.is_dir():
            for name in sorted(set(os.listdir(results)) - traces.cni_results):
                (results / name).unlink(missing_ok=True)
                actions.append(f"removed {results / name}")
        for directory in sorted(traces.cni_dirs, key=lambda p: -len(str(p))):
            if not traces.cni_dirs[directory] and directory.is_dir():
                try:
                    directory.rmdir()
                except OSError as exc:
                    actions.append(f"left {directory}: {exc}")
        if not traces.run_dir and RUN_DIR.is_dir():
            if _mountpoints_under(RUN_DIR):
                actions.append(f"left {RUN_DIR}: it holds mounts")
            else:
                shutil.rmtree(RUN_DIR, ignore_errors=True)
        return actions

    def leftovers(self) -> list[str]:
        """What is still there that :meth:`stop` should have removed (empty when clean)."""
        left = []
        if self.pid is not None and _pid_alive(self.pid):
            left.append(f"containerd {self.pid} is running")
        shims = [p for p in self.shim_pids() if p != self.pid]
        if shims:
            left.append(f"shim processes {shims}")
        traces = self.traces
        if traces is not None:
            if not traces.run_dir and RUN_DIR.exists():
                left.append(str(RUN_DIR))
            for ns in self.namespaces:
                left += [
                    str(p)
                    for p in _cgroup_parents(ns)
                    if p.exists() and p not in traces.cgroup_parents
                ]
            left += [str(d) for d, existed in traces.cni_dirs.items() if not existed and d.exists()]
            results = CNI_CACHE_DIR / "results"
            if results.is_dir():
                left += [str(results / n) for n in set(os.listdir(results)) - traces.cni_results]
        left += _mountpoints_under(self.scratch)
        return left


@contextlib.contextmanager
def running(scratch: Path, *, lab_mark: bool = True) -> Iterator[Containerd]:
    """A started :class:`Containerd`, stopped (and its traces removed) on exit."""
    daemon = Containerd(scratch, lab_mark=lab_mark)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
