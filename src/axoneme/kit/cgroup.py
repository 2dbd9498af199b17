"""cgroup v2 membership: which cgroup a process is in, and moving into one.

A socket belongs to the cgroup its creating process was in at ``socket()``
time, and cgroup socket hooks (the socket load balancer) run for the
sockets of their cgroup's subtree. So a process that must see a node's
socket LB creates its sockets while it is a member of that node's cgroup.

Moving writes the PID to ``cgroup.procs``, which moves every thread of the
process (cgroup v2 keeps a process's threads together). ``ip netns exec``
remounts ``/sys``, so a child that must stay in a cgroup joins it *before*
exec'ing ``ip netns exec`` (:func:`join_argv`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["V2_ROOT", "current", "join", "join_argv", "joined", "remove_tree"]

V2_ROOT = Path("/sys/fs/cgroup/unified")


def current(pid: int | str = "self", root: Path = V2_ROOT) -> Path:
    """The cgroup v2 directory of a process (the ``0::`` line of /proc/PID/cgroup)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return root / line[3:].lstrip("/")
    raise OSError(f"process {pid} is in no cgroup v2 hierarchy")


def join(cgroup: Path, pid: int = 0) -> None:
    """Move a process (default: this one) into ``cgroup``."""
    (cgroup / "cgroup.procs").write_text(f"{pid or os.getpid()}\n")


@contextmanager
def joined(cgroup: Path) -> Iterator[None]:
    """Run the body with this process in ``cgroup``, then move it back."""
    home = current()
    join(cgroup)
    try:
        yield
    finally:
        join(home)


def join_argv(cgroup: Path, argv: list[str]) -> list[str]:
    """A command line that joins ``cgroup`` and then execs ``argv``."""
    procs = shlex.quote(str(cgroup / "cgroup.procs"))
    return ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *argv]


def remove_tree(cgroup: Path) -> list[Path]:
    """Remove ``cgroup`` and its children, deepest first (they must hold no process)."""
    if not cgroup.is_dir():
        return []
    removed = []
    for child in sorted((p for p in cgroup.iterdir() if p.is_dir()), reverse=True):
        removed += remove_tree(child)
    os.rmdir(cgroup)
    removed.append(cgroup)
    return removed
