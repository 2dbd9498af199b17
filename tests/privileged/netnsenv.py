"""What the two-namespace privileged tests share: the gate, `ip`, stale clean-up, workloads."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys

import pytest


def require_netns(needs: str) -> None:
    """Skip (or fail under AXONEME_REQUIRE_PRIVILEGED=1) naming what is missing."""
    reason = None
    if os.geteuid() != 0:
        reason = f"needs root ({needs})"
    elif shutil.which("ip") is None:
        reason = "needs iproute2's 'ip' on PATH"
    if reason is None:
        return
    if os.environ.get("AXONEME_REQUIRE_PRIVILEGED") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def ip(*args: str, check: bool = True) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(pattern: re.Pattern[str]) -> None:
    """Namespaces of earlier runs killed before teardown: only ours, only dead owners.
    ``pattern`` captures the owning PID in group 1."""
    for name in netns_names():
        match = pattern.fullmatch(name)
        if match and not pid_alive(int(match.group(1))):
            ip("netns", "del", name, check=False)


def start_workload(ns: str, pod: str, *ports: str) -> subprocess.Popen[str]:
    args = ["--namespace", "demo", "--pod", pod, "--node", "n1"]
    for port in ports:
        args += ["--port", port]
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "axoneme.lab.workload", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(proc: subprocess.Popen[str], timeout: float = 15.0) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"workload not ready (got {line!r}): {err}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Signal, wait (kill after 5 s) and return the exit code and stderr."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    _, err = proc.communicate()
    return proc.returncode, err
