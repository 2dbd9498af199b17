"""``axoneme lab up|down|status``: build, inspect and remove the lab.

``down`` is also the crash-recovery path: it finds what a lab made by its
marks (namespaces named ``axn-*``, processes carrying ``AXONEME_LAB`` in
their environment, files under ``LAB_DIR``), so it works with or without a
live supervisor and with or without ``lab.json``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import axoneme
from axoneme.cni.install import write_launcher
from axoneme.kit import cgroup
from axoneme.kit.files import read_json_object
from axoneme.kit.procs import pids_marked
from axoneme.lab import netsetup
from axoneme.lab.topology import (
    BPF_PIN_ROOT,
    CGROUP_ROOT,
    ENV_MARK,
    LAB_DIR,
    LabConfig,
    cni_bin_dir,
    machine_clashes,
    node_plans,
    state_file,
)


class LabError(Exception):
    pass


@dataclass
class Leftovers:
    namespaces: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    files: bool = False
    bpf_pins: bool = False

    @property
    def empty(self) -> bool:
        return not (self.namespaces or self.processes or self.files or self.bpf_pins)

    def __str__(self) -> str:
        parts = []
        if self.namespaces:
            parts.append(f"{len(self.namespaces)} namespace(s) {' '.join(self.namespaces)}")
        if self.processes:
            parts.append(f"{len(self.processes)} process(es) {self.processes}")
        if self.files:
            parts.append(f"files under {LAB_DIR}")
        if self.bpf_pins:
            parts.append(f"pinned BPF objects under {BPF_PIN_ROOT}")
        return "; ".join(parts) or "nothing"


def lab_processes() -> list[int]:
    """PIDs of every process that carries the lab's mark in its environment."""
    return pids_marked(f"{ENV_MARK}={LAB_DIR}".encode())


def leftovers() -> Leftovers:
    return Leftovers(
        netsetup.lab_namespaces(), lab_processes(), LAB_DIR.exists(), BPF_PIN_ROOT.exists()
    )


def read_state() -> dict[str, Any] | None:
    return read_json_object(state_file())


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return False
    return True


def _kill_all(pids: list[int], grace: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.05)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return


def down(grace: float = 30.0) -> Leftovers:
    """Stop the lab and remove everything it made; returns what had to be swept by force."""
    state = read_state()
    pid = state.get("supervisorPid") if state else None
    if pid and alive(pid):
        # The supervisor deletes pods through CNI and stops agents and etcd in order.
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    swept = leftovers()
    _kill_all(lab_processes(), grace=5.0)
    for name in netsetup.lab_namespaces():
        netsetup.delete_namespace(name)
    if LAB_DIR.exists():
        shutil.rmtree(LAB_DIR, ignore_errors=True)
    # Every lab process is gone, so the node cgroups are empty and can go;
    # removing them detaches the socket LB programs attached to them.
    for _ in range(50):  # a task that just died may hold its cgroup a moment longer
        try:
            cgroup.remove_tree(CGROUP_ROOT)
            break
        except OSError:
            time.sleep(0.05)
    if BPF_PIN_ROOT.exists():
        # Unlinking a pin drops its reference; programs go once their devices are gone.
        shutil.rmtree(BPF_PIN_ROOT, ignore_errors=True)
    return swept


def up(config: LabConfig, timeout: float = 90.0) -> dict[str, Any]:
    config.validate()
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, veth, routes)")
    for tool in ("ip", "etcd"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool!r} is not installed (run `make deps`)")
    state = read_state()
    if state and alive(state.get("supervisorPid")):
        raise LabError("a lab is already running; run `axoneme lab down` first")
    clashes = machine_clashes(netsetup.machine_networks())
    if clashes:
        lab, machine = clashes[0]
        raise LabError(
            f"the lab routes {lab}, which overlaps this machine's network {machine}; "
            "change the lab's ranges in lab/topology.py"
        )
    down(grace=5.0)  # whatever a crashed run left
    LAB_DIR.mkdir(parents=True, mode=0o755)
    write_launcher(cni_bin_dir() / "axoneme-cni", Path(axoneme.__file__).parent.parent)
    try:
        netsetup.create_underlay()
        plans = node_plans(config)
        for plan in plans:
            netsetup.create_node(plan)
        netsetup.create_world(plans)
        if config.nodeport_acceleration == "native":
            netsetup.enable_xdp_forwarding(plans)
        with open(LAB_DIR / "supervisor.log", "ab") as log:
            # `setsid -f` forks the supervisor into its own session and returns at
            # once: the lab outlives this CLI and no child is left unwaited here.
            subprocess.run(
                [
                    "setsid",
                    "-f",
                    sys.executable,
                    "-m",
                    "axoneme.lab.supervisor",
                    "--config",
                    config.to_json(),
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                check=True,
                env={**os.environ, ENV_MARK: str(LAB_DIR)},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = read_state()
            if state and state.get("ready"):
                return state
            if state and not alive(state.get("supervisorPid")):
                break
            time.sleep(0.1)
        raise LabError(f"the lab did not become ready\n{_log_tails()}")
    except BaseException:
        down(grace=5.0)
        raise


def _log_tails(chars: int = 1500) -> str:
    """The ends of the lab's logs, for an error message (the files go with ``down``)."""
    parts = []
    for log in [
        LAB_DIR / "supervisor.log",
        LAB_DIR / "etcd.log",
        *sorted(LAB_DIR.glob("nodes/*/agent.log")),
    ]:
        with contextlib.suppress(OSError):
            parts.append(f"--- {log}\n{log.read_text()[-chars:]}")
    return "\n".join(parts)


def etcd_control(action: str, timeout: float = 30.0) -> dict[str, Any]:
    """Stop or start the lab's etcd through the supervisor (an outage on demand)."""
    if action not in ("stop", "start"):
        raise LabError(f"etcd action: {action!r} is not stop or start")
    state = require_state()
    os.kill(int(state["supervisorPid"]), signal.SIGUSR1 if action == "stop" else signal.SIGUSR2)
    want = action == "start"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = require_state()
        if bool(state.get("store", {}).get("running")) == want:
            return state
        time.sleep(0.05)
    raise LabError(f"etcd did not {action} within {timeout:.0f}s\n{_log_tails()}")


def require_state() -> dict[str, Any]:
    state = read_state()
    if not state or not alive(state.get("supervisorPid")):
        raise LabError("no lab is running (start one with `axoneme lab up`)")
    return state
