"""The ``axoneme connectivity test`` command: select, run, report, exit status."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

from axoneme.cli.context import CLIError
from axoneme.connectivity.report import exit_status, failed_names, summary
from axoneme.connectivity.runner import Options, run_with_signals
from axoneme.connectivity.scenarios import SCENARIOS, SelectionError, select


def _fancy() -> bool:
    """Emoji only on a terminal that can print them."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return sys.stdout.isatty() and encoding == "utf8"


def _emit(line: str) -> None:
    print(line, flush=True)


def run_test_command(patterns: Sequence[str], timeout: float, keep: bool) -> int:
    """Run the selected scenarios; 0 if none failed, 1 otherwise."""
    if timeout <= 0:
        raise CLIError(f"--timeout: {timeout} must be positive")
    try:
        chosen = select(SCENARIOS, patterns)
    except SelectionError as exc:
        raise CLIError(str(exc)) from exc
    started = time.monotonic()
    options = Options(probe_timeout=timeout, keep=keep, fancy=_fancy())
    results = asyncio.run(run_with_signals(chosen, options, _emit))
    _emit("")
    _emit(summary(results, time.monotonic() - started))
    failed = failed_names(results)
    if failed:
        _emit(f"Failed: {', '.join(failed)}")
    return exit_status(results)
