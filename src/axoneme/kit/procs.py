"""Finding processes by a mark in their environment (how labs and benchmarks find their own)."""

from __future__ import annotations

import os
from pathlib import Path


def pids_marked(mark: bytes) -> list[int]:
    """PIDs (not this one) whose environment holds exactly ``mark`` (``KEY=VALUE``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if mark in env.split(b"\0"):
            pids.append(int(entry))
    return sorted(pids)
