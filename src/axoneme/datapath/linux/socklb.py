"""The socket load balancer: loading ``bpf/build/bpf_sock.o`` and attaching it to a cgroup.

Maps are pinned by name into the node's pin directory beside the endpoint
datapath's (``axo_lb_*``), programs as ``prog_sock4_*``. As with the endpoint
datapath, an agent that finds everything pinned adopts it and loads nothing,
so a restart (``kill -9`` included) never interrupts service translation.

Attachment is ``BPF_PROG_ATTACH`` without flags: one program per hook on the
cgroup, and attaching again replaces it atomically. The cgroup keeps the
program after the agent exits; removing the cgroup (the lab's ``down``) or
:func:`detach` ends it.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

from axoneme.datapath.linux import bpfsys, libbpf
from axoneme.datapath.linux.lbmaps import LB_MAP_NAMES

__all__ = ["HOOKS", "SOCK_OBJECT", "SockLBError", "attach", "attached", "detach", "load"]

log = logging.getLogger("axoneme.datapath.socklb")

# src/axoneme/datapath/linux/socklb.py -> the checkout's bpf/build/
SOCK_OBJECT = Path(__file__).resolve().parents[4] / "bpf" / "build" / "bpf_sock.o"
OBJECT_ENV = "AXONEME_BPF_SOCK_OBJECT"

# program -> enum bpf_attach_type
HOOKS = {
    "sock4_connect": 10,  # BPF_CGROUP_INET4_CONNECT
    "sock4_sendmsg": 14,  # BPF_CGROUP_UDP4_SENDMSG
    "sock4_recvmsg": 19,  # BPF_CGROUP_UDP4_RECVMSG
    "sock4_getpeername": 29,  # BPF_CGROUP_INET4_GETPEERNAME
}
_PROG_ATTACH, _PROG_DETACH, _PROG_QUERY = 8, 9, 16


class SockLBError(RuntimeError):
    """The socket LB cannot be loaded or attached as asked."""


class _AttachAttr(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
        ("relative_fd", ctypes.c_uint32),
        ("expected_revision", ctypes.c_uint64),
    ]


class _QueryAttr(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("query_flags", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("prog_ids", ctypes.c_uint64),
        ("prog_cnt", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("prog_attach_flags", ctypes.c_uint64),
        ("link_ids", ctypes.c_uint64),
        ("link_attach_flags", ctypes.c_uint64),
        ("revision", ctypes.c_uint64),
    ]


_pin = libbpf.program_pin


def load(pin_dir: Path, *, object_path: Path | None = None, force: bool = False) -> bool:
    """Make sure the programs and maps are pinned in pin_dir; True if loaded now."""
    pin_dir.mkdir(parents=True, exist_ok=True)
    for name, (key_size, value_size) in LB_MAP_NAMES.items():
        pinned = pin_dir / name
        if pinned.exists():
            fd = bpfsys.obj_get(pinned)
            try:
                info = bpfsys.map_info(fd)
            finally:
                os.close(fd)
            if (info.key_size, info.value_size) != (key_size, value_size):
                # A pin from an older layout: the new object must make its own.
                log.warning("removing %s: layout changed", pinned)
                pinned.unlink()
                force = True
    if (
        not force
        and all(_pin(pin_dir, n).exists() for n in HOOKS)
        and all((pin_dir / m).exists() for m in LB_MAP_NAMES)
    ):
        return False
    path = object_path or Path(os.environ.get(OBJECT_ENV) or SOCK_OBJECT)
    if not path.is_file():
        raise SockLBError(f"BPF object {path} is missing (make -C bpf builds it)")
    libbpf.load_and_pin(path, pin_dir, HOOKS)
    return True


def attach(pin_dir: Path, cgroup: Path) -> None:
    """Run the pinned programs for every socket of ``cgroup``'s subtree (idempotent)."""
    cg = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name, attach_type in HOOKS.items():
            prog = bpfsys.obj_get(_pin(pin_dir, name))
            try:
                attr = _AttachAttr(target_fd=cg, attach_bpf_fd=prog, attach_type=attach_type)
                bpfsys.bpf(_PROG_ATTACH, attr, f"attaching {name} to {cgroup}")
            finally:
                os.close(prog)
    finally:
        os.close(cg)


def attached(cgroup: Path) -> dict[str, list[int]]:
    """The program ids on each of our hooks of ``cgroup`` (empty list: none)."""
    out: dict[str, list[int]] = {}
    cg = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name, attach_type in HOOKS.items():
            ids = (ctypes.c_uint32 * 8)()
            attr = _QueryAttr(
                target_fd=cg, attach_type=attach_type, prog_ids=ctypes.addressof(ids), prog_cnt=8
            )
            bpfsys.bpf(_PROG_QUERY, attr, f"querying {name} on {cgroup}")
            out[name] = list(ids[: attr.prog_cnt])
    finally:
        os.close(cg)
    return out


def detach(pin_dir: Path, cgroup: Path) -> int:
    """Remove our programs from ``cgroup``; how many were attached."""
    removed = 0
    cg = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name, attach_type in HOOKS.items():
            pin = _pin(pin_dir, name)
            if not pin.exists():
                continue
            prog = bpfsys.obj_get(pin)
            try:
                attr = _AttachAttr(target_fd=cg, attach_bpf_fd=prog, attach_type=attach_type)
                bpfsys.bpf(_PROG_DETACH, attr, f"detaching {name} from {cgroup}")
                removed += 1
            except OSError:
                pass  # not attached
            finally:
                os.close(prog)
    finally:
        os.close(cg)
    return removed
