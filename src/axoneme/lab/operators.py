"""The lab's operators: two ``axoneme-operator`` processes, one leader, one standby.

Run as a Deployment of two would be: each is restarted when it dies, and
leader election on an etcd lease decides which one works. They reach etcd
through its unix socket and carry the lab's mark, so ``lab down`` finds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from axoneme.lab.topology import LAB_DIR, LabConfig, store_unix_path

log = logging.getLogger("axoneme.lab")

OPERATORS = ("operator-1", "operator-2")
# Short, so a killed leader is replaced within seconds in the lab (the test asserts it).
OPERATOR_LEASE_TTL = 5


def operator_log(name: str) -> Path:
    return LAB_DIR / f"{name}.log"


def operator_identity(name: str, restarts: int) -> str:
    """Unique per process, so a restarted operator is told apart from its predecessor."""
    return f"{name}#{restarts}"


def operator_args(identity: str, config: LabConfig) -> list[str]:
    return [
        "--store",
        f"unix:{store_unix_path()}",
        "--id",
        identity,
        "--lease-ttl",
        str(OPERATOR_LEASE_TTL),
        "--cluster-pool-ipv4-pod-cidr-list",
        config.pod_cidr,
        "--cluster-pool-ipv4-mask-size",
        str(config.pod_cidr_mask),
        "--identity-gc-interval",
        "30",
        "--identity-gc-grace",
        "60",
    ]


class LabOperators:
    def __init__(self, config: LabConfig, env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.restarts = dict.fromkeys(OPERATORS, 0)
        self.stopping = False

    def state(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "pid": self.procs[name].pid if name in self.procs else None,
                "identity": operator_identity(name, self.restarts[name]),
                "restarts": self.restarts[name],
                "log": str(operator_log(name)),
            }
            for name in OPERATORS
        ]

    async def run(self, changed: Callable[[], None]) -> None:
        async with asyncio.TaskGroup() as tg:
            for name in OPERATORS:
                tg.create_task(self._keep(name, changed), name=name)

    async def _keep(self, name: str, changed: Callable[[], None]) -> None:
        while not self.stopping:
            with open(operator_log(name), "ab") as logfile:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "axoneme.operator.main",
                    *operator_args(operator_identity(name, self.restarts[name]), self.config),
                    stdout=logfile,
                    stderr=logfile,
                    stdin=asyncio.subprocess.DEVNULL,
                    env=self.env,
                )
            self.procs[name] = proc
            changed()
            code = await proc.wait()
            if self.stopping:
                return
            self.restarts[name] += 1
            log.warning("%s exited with %s; restarting", name, code)
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """SIGTERM: each resigns its leadership (while etcd is still up)."""
        self.stopping = True
        running = [p for p in self.procs.values() if p.returncode is None]
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                await asyncio.wait_for(proc.wait(), timeout=5)
            except TimeoutError:
                proc.kill()
                with contextlib.suppress(ProcessLookupError):
                    await proc.wait()
