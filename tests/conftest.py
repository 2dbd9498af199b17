"""Shared test settings: the privileged gate and the lab lock."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE_PRIVILEGED = os.environ.get("AXONEME_REQUIRE_PRIVILEGED") == "1"
LOCK_FILE = Path("/run/axoneme-test.lock")


def privilege_problem() -> str | None:
    """Why privileged tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, routes)"
    for tool in ("ip", "etcd"):
        if shutil.which(tool) is None:
            return f"needs {tool!r} on PATH (make deps installs it)"
    if not Path("/proc/self/ns/net").exists():
        return "needs network namespaces"
    return None


def require_privileges() -> None:
    problem = privilege_problem()
    if problem is None:
        return
    if REQUIRE_PRIVILEGED:
        pytest.fail(f"privileged test cannot run: {problem} (AXONEME_REQUIRE_PRIVILEGED=1)")
    pytest.skip(problem)


@pytest.fixture
def privileged() -> None:
    require_privileges()


@pytest.fixture(scope="session")
def lab_lock() -> Iterator[None]:
    """Serialise lab use across pytest processes: there is one lab per machine."""
    require_privileges()
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
