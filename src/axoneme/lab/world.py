"""The world outside the cluster: the workload in ``axn-world``, kept running.

``lab up`` builds the namespace (:func:`axoneme.lab.netsetup.create_world`): a
host on the underlay at ``WORLD_IP`` holding documentation-range addresses
that stand for the internet. The supervisor runs :func:`run_world`, which
starts the built-in workload there (namespace ``world``, pod ``world``, node
``world``, ports ``WORLD_PORTS``) and restarts it whenever it dies, as it does
for pods; :func:`world_ready` waits for its first start. ``world.json`` in the
lab directory says what runs (:func:`read_world_state`, :func:`status_line`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from axoneme.kit.files import atomic_write_text, read_json_object
from axoneme.lab.topology import (
    ENV_MARK,
    LAB_DIR,
    WORLD_ADDRESSES,
    WORLD_IP,
    WORLD_NETNS,
    WORLD_PORTS,
    world_log,
    world_state_file,
)

__all__ = [
    "WORLD_IDENTITY",
    "read_world_state",
    "run_world",
    "status_line",
    "world_command",
    "world_ready",
]

log = logging.getLogger("axoneme.lab.world")

WORLD_IDENTITY = ("world", "world", "world")  # namespace, pod, node the workload reports
READY_TIMEOUT = 15.0
STOP_GRACE = 5.0


@dataclass
class _Status:
    pid: int | None = None
    restarts: int = 0
    problem: str = ""
    started: asyncio.Event = field(default_factory=asyncio.Event)


_status = _Status()


def world_command(python: str = sys.executable) -> list[str]:
    namespace, pod, node = WORLD_IDENTITY
    args = ["ip", "netns", "exec", WORLD_NETNS, python, "-m", "axoneme.lab.workload"]
    args += ["--namespace", namespace, "--pod", pod, "--node", node]
    for port in WORLD_PORTS:
        args += ["--port", port]
    return args


def _write_state() -> None:
    state = {
        "netns": WORLD_NETNS,
        "ip": WORLD_IP,
        "addresses": list(WORLD_ADDRESSES),
        "ports": list(WORLD_PORTS),
        "workloadPid": _status.pid,
        "restarts": _status.restarts,
        "log": str(world_log()),
    }
    atomic_write_text(world_state_file(), json.dumps(state, indent=1), mode=0o644)


def read_world_state() -> dict[str, Any] | None:
    return read_json_object(world_state_file())


def status_line() -> str:
    """One line for ``axoneme lab status``."""
    state = read_world_state()
    if state is None:
        return f"world: {WORLD_NETNS} not running"
    return (
        f"world: {state['netns']} {state['ip']} ({', '.join(state['addresses'])})  "
        f"workload pid {state['workloadPid']}  restarts {state['restarts']}  "
        f"ports {' '.join(state['ports'])}"
    )


async def _start(python: str) -> asyncio.subprocess.Process:
    """Start the workload and wait for its ``ready`` line."""
    with open(world_log(), "ab") as logfile:
        proc = await asyncio.create_subprocess_exec(
            *world_command(python),
            stdout=asyncio.subprocess.PIPE,
            stderr=logfile,
            stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, ENV_MARK: str(LAB_DIR)},
        )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=READY_TIMEOUT)
    except BaseException:
        await _stop(proc)
        raise
    if line.strip() != b"ready":
        await _stop(proc)
        raise RuntimeError(f"the world workload did not start (see {world_log()})")
    return proc


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_world(stop: asyncio.Event, python: str = sys.executable) -> None:
    """Keep the world workload running until ``stop`` is set; restart it when it dies."""
    backoff = 0.5
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            proc = await _start(python)
        except (OSError, RuntimeError, TimeoutError) as exc:
            _status.problem = str(exc) or type(exc).__name__
            log.warning("world workload failed to start: %s; retrying in %.1fs", exc, backoff)
            await _pause(stop, backoff)
            backoff = min(backoff * 2, 10.0)
            continue
        _status.pid, _status.problem = proc.pid, ""
        _write_state()
        _status.started.set()
        started = loop.time()
        try:
            exited = asyncio.ensure_future(proc.wait())
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                exited.cancel()
                stopping.cancel()
        finally:
            await _stop(proc)
        if stop.is_set():
            break
        _status.restarts += 1
        _status.pid = None
        _write_state()
        backoff = 0.5 if loop.time() - started > 10 else min(backoff * 2, 10.0)
        log.warning("world workload exited with %s; restarting in %.1fs", proc.returncode, backoff)
        await _pause(stop, backoff)
    _status.pid = None
    with contextlib.suppress(OSError):
        _write_state()


async def world_ready(timeout: float = 30.0) -> None:
    """Wait until :func:`run_world` has started the workload once."""
    try:
        await asyncio.wait_for(_status.started.wait(), timeout=timeout)
    except TimeoutError:
        problem = f": {_status.problem}" if _status.problem else ""
        raise RuntimeError(
            f"the world workload is not ready after {timeout:g}s{problem} (see {world_log()})"
        ) from None
