"""What privileged datapath tests share: the precondition check and a shell helper."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def require_datapath() -> None:
    """Skip (fail under AXONEME_REQUIRE_PRIVILEGED=1) naming what is missing, then
    build the BPF objects (a no-op when they are up to date)."""
    reason = None
    if os.geteuid() != 0:
        reason = "needs root (bpf(), bpffs, network namespaces)"
    elif shutil.which("ip") is None:
        reason = "needs iproute2's 'ip' on PATH"
    elif not (shutil.which("clang-19") or shutil.which("clang")):
        reason = "needs clang to build bpf/ (make deps installs it)"
    if reason is not None:
        if os.environ.get("AXONEME_REQUIRE_PRIVILEGED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    subprocess.run(["make", "-s", "-C", str(REPO / "bpf")], check=True)


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout
