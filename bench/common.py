"""What every benchmark script shares: finding its processes, and a run that always cleans up."""

from __future__ import annotations

import fcntl
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from axoneme.kit.procs import pids_marked

REPO = Path(__file__).resolve().parent.parent


def commit_of_tree() -> str | None:
    """The short commit the benchmarks run from, for the report (None outside git)."""
    rev = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return rev.stdout.strip() if rev.returncode == 0 else None


__all__ = ["exclusive_run", "guarded_run", "pids_marked", "signals_ignored"]


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Clean-up must not be cut short by a second Ctrl-C or a SIGTERM."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def guarded_run(
    name: str,
    body: Callable[[], None],
    cleanup: Callable[[], list[str]],
    errors: tuple[type[Exception], ...],
) -> int:
    """Run ``body``; clean up whatever happens; 0 ok, 1 failed or not clean, 130 interrupted."""
    status = 0
    try:
        body()
    except errors as exc:
        print(f"{name}: FAILED: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        status = 130
    finally:
        with signals_ignored():
            problems = cleanup()
        for p in problems:
            print(f"{name}: clean-up: {p}", file=sys.stderr)
        if problems and status == 0:
            status = 1
    return status


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def exclusive_run(lock_file: Path, say: Callable[[str], None]) -> Iterator[None]:
    """Hold ``lock_file`` (waiting, and saying so, while another run holds it) and
    turn SIGTERM into KeyboardInterrupt, so a terminated run still cleans up."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another benchmark run ({lock_file})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        signal.signal(signal.SIGTERM, _terminate)
        yield
