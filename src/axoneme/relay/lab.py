"""The lab's relay: one ``axoneme-relay`` in the lab namespace, kept running.

It reaches every node's observer on the underlay (NODE_IP:4244), serves the
CLI on a unix socket under the lab directory and the lab on 172.30.0.1:4245,
and its /metrics on 172.30.0.1:9966. Restarted when it dies; terminated when
the task is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from axoneme.lab.topology import (
    ENV_MARK,
    LAB_DIR,
    LAB_NETNS,
    OBSERVER_PORT,
    RELAY_METRICS_PORT,
    RELAY_PORT,
    STORE_IP,
    relay_log,
    relay_socket,
    store_unix_path,
)

log = logging.getLogger("axoneme.lab")


def relay_args() -> list[str]:
    return [
        "--store",
        f"unix:{store_unix_path()}",
        "--socket",
        str(relay_socket()),
        "--listen-address",
        f"{STORE_IP}:{RELAY_PORT}",
        "--peer-port",
        str(OBSERVER_PORT),
        "--metrics-address",
        f"{STORE_IP}:{RELAY_METRICS_PORT}",
        # Live flows wait this long to be put in order across nodes: short, so a
        # drop shows up in `observe --follow` well within 100 ms.
        "--sort-window",
        "0.02",
    ]


async def run_lab_relay() -> None:
    backoff = 0.5
    proc: asyncio.subprocess.Process | None = None
    try:
        while True:
            with open(relay_log(), "ab") as logfile:
                proc = await asyncio.create_subprocess_exec(
                    "nsenter",
                    f"--net=/run/netns/{LAB_NETNS}",
                    sys.executable,
                    "-m",
                    "axoneme.relay.main",
                    *relay_args(),
                    stdout=logfile,
                    stderr=logfile,
                    stdin=asyncio.subprocess.DEVNULL,
                    env={**os.environ, ENV_MARK: str(LAB_DIR)},
                )
            started = asyncio.get_running_loop().time()
            code = await proc.wait()
            ran = asyncio.get_running_loop().time() - started
            backoff = 0.5 if ran > 10 else min(backoff * 2, 10.0)
            log.warning("relay exited with %s; restarting in %.1fs", code, backoff)
            await asyncio.sleep(backoff)
    finally:
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=5)
            except TimeoutError:
                proc.kill()
                with contextlib.suppress(ProcessLookupError):
                    await proc.wait()
