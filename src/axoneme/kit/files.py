"""Small file helpers: writes that are never seen half-done, and reading them back."""

from __future__ import annotations

import itertools
import json
import os
import threading
from pathlib import Path
from typing import Any

_tmp_names = itertools.count()


def atomic_write_text(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a mix.

    The temporary file is fsynced before the rename so that a crash (or a
    ``kill -9`` of the writer) cannot leave an empty state file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer, so two threads writing the same file never share a temp file.
    tmp = path.with_name(
        f".{path.name}.{os.getpid()}.{threading.get_ident()}.{next(_tmp_names)}.tmp"
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object file written with :func:`atomic_write_text`; None when it is
    absent or not a JSON object (a state file of a process that never started)."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
