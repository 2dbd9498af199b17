"""NodePort acceleration: ``bpf/build/bpf_xdp.o`` in native XDP on the node's underlay device.

The program shares the service maps and ``axo_lb_nat``/``axo_lb_node`` with
``bpf_host.o`` (pinned by name in the node's pin directory, so
:func:`axoneme.datapath.linux.hostlb.load` must run first) and adds
``axo_xdp_stats``, per-CPU counts of what it did with service packets. It is
pinned as ``prog_xdp_nodeport``, attached in driver (native) mode, and stays
attached when the agent exits, as the tc programs do.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axoneme.datapath.linux import bpfsys, libbpf

__all__ = [
    "XDP_OBJECT",
    "XdpStats",
    "attach",
    "attached_id",
    "detach",
    "detach_ours",
    "load",
    "stats",
]

XDP_OBJECT = Path(__file__).resolve().parents[4] / "bpf" / "build" / "bpf_xdp.o"
PROGRAM = "xdp_nodeport"
STATS_MAP = "axo_xdp_stats"
XDP_FLAGS_DRV_MODE = 1 << 2  # native only: fail rather than fall back to generic XDP


@dataclass(frozen=True)
class XdpStats:
    """Service packets the XDP program handled (summed over CPUs); see bpf_xdp.c."""

    forwarded: int  # translated and sent out again in XDP (XDP_TX / XDP_REDIRECT)
    to_stack: int  # translated for a local backend, then passed to the stack
    to_tc: int  # left to the tc program
    dropped: int  # no backend, under --service-no-backend-response drop (reject: to tc)


def _pin(pin_dir: Path) -> Path:
    return libbpf.program_pin(pin_dir, PROGRAM)


def _fn(name: str, args: list[type]) -> Any:
    fn = getattr(libbpf.lib(), name)
    fn.argtypes = args
    fn.restype = ctypes.c_int
    return fn


def load(pin_dir: Path, object_path: Path = XDP_OBJECT) -> bool:
    """Pin the program (and its stats map) in pin_dir unless there; True if loaded now."""
    if _pin(pin_dir).exists() and (pin_dir / STATS_MAP).exists():
        return False
    if not object_path.is_file():
        raise FileNotFoundError(f"BPF object {object_path} is missing (make -C bpf builds it)")
    libbpf.load_and_pin(object_path, pin_dir, [PROGRAM])
    return True


def attach(pin_dir: Path, ifindex: int) -> None:
    """Native XDP on the device (in this thread's netns); replaces what is there."""
    fd = bpfsys.obj_get(_pin(pin_dir))
    try:
        attach_fn = _fn(
            "bpf_xdp_attach", [ctypes.c_int, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p]
        )
        ret = attach_fn(ifindex, fd, XDP_FLAGS_DRV_MODE, None)
        if ret:
            err = -ret if ret < 0 else ctypes.get_errno()
            raise OSError(err, f"native XDP on ifindex {ifindex}: {os.strerror(err)}")
    finally:
        os.close(fd)


def attached_id(ifindex: int) -> int:
    """The id of the native XDP program on the device, 0 when none."""
    query = _fn("bpf_xdp_query_id", [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32)])
    prog_id = ctypes.c_uint32(0)
    ret = query(ifindex, XDP_FLAGS_DRV_MODE, ctypes.byref(prog_id))
    if ret:
        err = -ret if ret < 0 else ctypes.get_errno()
        raise OSError(err, f"querying XDP on ifindex {ifindex}: {os.strerror(err)}")
    return prog_id.value


def detach(ifindex: int) -> bool:
    """Remove the native XDP program from the device; False if there was none."""
    if not attached_id(ifindex):
        return False
    detach_fn = _fn("bpf_xdp_detach", [ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p])
    ret = detach_fn(ifindex, XDP_FLAGS_DRV_MODE, None)
    if ret:
        err = -ret if ret < 0 else ctypes.get_errno()
        raise OSError(err, f"removing XDP from ifindex {ifindex}: {os.strerror(err)}")
    return True


def stats(pin_dir: Path) -> XdpStats:
    """The program's counters, summed over CPUs."""
    ncpu = bpfsys.nr_possible_cpus()
    totals = []
    with bpfsys.BpfMap.open_pinned(pin_dir / STATS_MAP) as m:
        for index in range(4):
            raw = m.lookup(index.to_bytes(4, "little")) or b""
            totals.append(sum(struct.unpack_from(f"<{ncpu}Q", raw)) if raw else 0)
    return XdpStats(*totals)


def detach_ours(pin_dir: Path, ifindex: int) -> bool:
    """Remove our pinned program from the device if it is the one attached (an agent
    started with acceleration off after one with it on); never someone else's."""
    if not _pin(pin_dir).exists():
        return False
    fd = bpfsys.obj_get(_pin(pin_dir))
    try:
        ours = bpfsys.prog_info(fd).id
    finally:
        os.close(fd)
    return attached_id(ifindex) == ours and detach(ifindex)
