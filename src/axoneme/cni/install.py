"""Install the ``axoneme-cni`` launcher: the file a runtime execs from its CNI bin dir.

The console script that pip generates imports ``importlib.metadata`` and runs
under whatever ``python3`` is on the runtime's ``PATH`` (a pyenv shim costs
about 70 ms per call, ``cni-runtime-feasibility.md`` §4). The launcher instead
names an absolute interpreter with ``-IS`` (isolated: no ``PYTHON*`` variables
from the runtime's environment, no user site; no ``site``) and puts the source
root on ``sys.path`` itself.

CLI: ``python -m axoneme.cni.install DEST [--src-root DIR] [--python PATH]``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from axoneme.kit import files

__all__ = ["DEFAULT_PYTHON", "launcher_text", "main", "write_launcher"]

DEFAULT_PYTHON = "/usr/bin/python3"
# The directory that holds the ``axoneme`` package this module came from.
_OWN_SRC_ROOT = Path(__file__).resolve().parents[2]


def launcher_text(src_root: Path, python: str = DEFAULT_PYTHON) -> str:
    """The launcher script: ``python -IS``, ``src_root`` first on ``sys.path``, then main()."""
    # The kernel splits a shebang at the first blank and passes the rest as one
    # argument, so the interpreter path cannot hold whitespace; "-IS" is one flag word.
    if not os.path.isabs(python) or any(ch.isspace() for ch in python):
        raise ValueError(f"python must be an absolute path without whitespace: {python!r}")
    if not src_root.is_absolute():
        raise ValueError(f"src_root must be absolute: {src_root}")
    return (
        f"#!{python} -IS\n"
        '"""axoneme-cni launcher, written by axoneme.cni.install; do not edit."""\n'
        "import sys\n"
        f"sys.path.insert(0, {str(src_root)!r})\n"
        "from axoneme.cni.plugin import main\n"
        "sys.exit(main())\n"
    )


def write_launcher(dest: Path, src_root: Path, python: str = DEFAULT_PYTHON) -> None:
    """Write an executable launcher at ``dest`` that runs ``axoneme.cni.plugin.main``.

    ``src_root`` is the directory containing the ``axoneme`` package. The file is
    replaced atomically: a runtime may exec the plugin while it is being upgraded.
    """
    plugin = src_root / "axoneme" / "cni" / "plugin.py"
    if not plugin.is_file():
        raise FileNotFoundError(f"{plugin} not found: src_root must hold the axoneme package")
    files.atomic_write_text(dest, launcher_text(src_root, python), mode=0o755)
    # The umask may have narrowed the mode; a runtime needs the exec bit.
    dest.chmod(0o755)


def main(argv: list[str] | None = None) -> int:
    """``python -m axoneme.cni.install DEST``: write the launcher, print its path."""
    parser = argparse.ArgumentParser(
        prog="python -m axoneme.cni.install", description="Write the axoneme-cni launcher."
    )
    parser.add_argument("dest", type=Path, help="launcher path, e.g. /opt/cni/bin/axoneme-cni")
    parser.add_argument(
        "--src-root",
        type=Path,
        default=_OWN_SRC_ROOT,
        help=f"directory holding the axoneme package (default: {_OWN_SRC_ROOT})",
    )
    parser.add_argument(
        "--python", default=DEFAULT_PYTHON, help=f"interpreter (default: {DEFAULT_PYTHON})"
    )
    args = parser.parse_args(argv)
    try:
        write_launcher(args.dest.absolute(), args.src_root.resolve(), args.python)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    print(args.dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
