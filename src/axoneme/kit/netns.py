"""Enter Linux network namespaces from Python threads.

Python 3.11 has no ``os.setns``, so this calls libc's ``setns(2)`` through
ctypes. A network namespace belongs to a *thread*, not to the process, and a
socket stays in the namespace it was created in for its whole life. Hence:

- :func:`entered` moves the calling thread in and always back out; it must never
  wrap an ``await`` (the event loop would run other tasks in the foreign netns);
- :func:`socket_in` creates the socket on a fresh short-lived thread and hands it
  back, so the caller's thread (often an asyncio loop) never changes namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CLONE_NEWNET", "NetnsError", "entered", "netns_path", "socket_in"]

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int


class NetnsError(OSError):
    """Joining or leaving a network namespace failed."""


def netns_path(name_or_path: str) -> str:
    """Return the namespace file for a name as ``ip netns`` uses it; paths pass through."""
    if not name_or_path:
        raise ValueError("netns: empty name")
    if "/" in name_or_path:
        return name_or_path
    if name_or_path in (".", ".."):
        raise ValueError(f"netns: {name_or_path!r} is not a namespace name")
    return f"{NETNS_RUN_DIR}/{name_or_path}"


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, f"setns({what}): {os.strerror(err)}")


def _open_ns(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetnsError(exc.errno, f"open netns {path}: {exc.strerror}") from exc


@contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the body with the current thread inside the netns at ``path``.

    The thread's own namespace is held open by fd beforehand, so returning works
    even if the original namespace has no name. Do not ``await`` inside.
    """
    # thread-self, not self: setns changed only this thread, other threads may differ.
    home = _open_ns(f"/proc/self/task/{threading.get_native_id()}/ns/net")
    try:
        target = _open_ns(netns_path(path))
        try:
            _setns(target, path)
        finally:
            os.close(target)
        try:
            yield
        finally:
            # A failure here leaves the thread stranded; surface it loudly rather
            # than let later sockets appear in the wrong namespace.
            _setns(home, "return to original netns")
    finally:
        os.close(home)


def socket_in(path: str, family: int, type: int, proto: int = 0) -> socket.socket:
    """Create a socket inside the netns at ``path`` and return it non-blocking.

    The namespace switch happens on a throwaway thread, so it is safe to call
    from an event loop thread (it blocks for the thread's short life only).
    """
    box: list[socket.socket | BaseException] = []
    target = netns_path(path)

    def work() -> None:
        try:
            # Never returns to the home netns: the thread ends right after.
            fd = _open_ns(target)
            try:
                _setns(fd, target)
            finally:
                os.close(fd)
            sock = socket.socket(family, type, proto)
            sock.setblocking(False)
            box.append(sock)
        except BaseException as exc:  # handed to the caller's thread below
            box.append(exc)

    worker = threading.Thread(target=work, name=f"netns:{target}", daemon=True)
    worker.start()
    worker.join()
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result
