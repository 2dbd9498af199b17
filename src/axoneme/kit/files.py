"""Small file helpers: writes that are never seen half-done."""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path

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
