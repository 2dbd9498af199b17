"""TCP retransmissions per flow: loading ``bpf/build/bpf_tcpretrans.o`` and reading its map.

The program runs at ``tp_btf/tcp_retransmit_skb`` and counts retransmitted
segments per IPv4 4-tuple of this node's endpoints in ``axo_tcp_retrans``
(an LRU hash). Everything is pinned in the node's pin directory beside the
endpoint datapath: the map by name, the program as ``prog_tcp_retransmit``
and the tracepoint link as ``link_tcp_retransmit``. The link's pin is what
keeps the program attached, so an agent restart adopts it and loads nothing,
and removing the pin directory (``Datapath.remove``: uninstall, ``lab down``)
detaches it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from axoneme.datapath.linux import bpfsys, libbpf

__all__ = [
    "KEY",
    "MAP_NAME",
    "OBJECT",
    "VALUE",
    "RetransEntry",
    "TcpRetransError",
    "attached",
    "decode",
    "detach",
    "load",
    "read",
]

log = logging.getLogger("axoneme.datapath.tcpretrans")

# src/axoneme/datapath/linux/tcpretrans.py -> the checkout's bpf/build/
OBJECT = Path(__file__).resolve().parents[4] / "bpf" / "build" / "bpf_tcpretrans.o"
OBJECT_ENV = "AXONEME_BPF_TCPRETRANS_OBJECT"
MAP_NAME = "axo_tcp_retrans"
PROGRAM = "tcp_retransmit"
PROG_PIN = f"prog_{PROGRAM}"  # libbpf.program_pin's name
LINK_PIN = f"link_{PROGRAM}"

# struct tcp_retrans_key / tcp_retrans_value (bpf/bpf_tcpretrans.c):
# addresses and ports in network byte order, counters host order.
KEY = struct.Struct("=4s4s2s2s")
VALUE = struct.Struct("=QQQ")

_RAW_TRACEPOINT_OPEN = 17


class TcpRetransError(RuntimeError):
    """The retransmit tracker cannot be loaded or attached as asked."""


class _RawTpAttr(ctypes.Structure):
    """union bpf_attr's raw_tracepoint member; name 0: the tp_btf target set at load."""

    _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


@dataclass(frozen=True)
class RetransEntry:
    """One flow's retransmissions, as the local endpoint (``saddr``) sent them."""

    saddr: str
    sport: int
    daddr: str
    dport: int
    segments: int
    first_seen_ns: int  # CLOCK_MONOTONIC, as time.monotonic_ns()
    last_seen_ns: int


def decode(key: bytes, value: bytes) -> RetransEntry:
    """One map entry as a value (pure)."""
    saddr, daddr, sport, dport = KEY.unpack(key)
    segments, last_seen, first_seen = VALUE.unpack(value)
    return RetransEntry(
        saddr=_ip(saddr),
        sport=int.from_bytes(sport, "big"),
        daddr=_ip(daddr),
        dport=int.from_bytes(dport, "big"),
        segments=segments,
        first_seen_ns=first_seen,
        last_seen_ns=last_seen,
    )


def _ip(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def _check_map(pin_dir: Path) -> None:
    """A pin from a build with another layout is removed: it would be misread."""
    pinned = pin_dir / MAP_NAME
    if not pinned.exists():
        return
    fd = bpfsys.obj_get(pinned)
    try:
        info = bpfsys.map_info(fd)
    finally:
        os.close(fd)
    if (info.key_size, info.value_size) != (KEY.size, VALUE.size):
        log.warning("removing %s: layout changed", pinned)
        pinned.unlink()
        (pin_dir / PROG_PIN).unlink(missing_ok=True)
        (pin_dir / LINK_PIN).unlink(missing_ok=True)  # detaches the old program


def load(pin_dir: Path, *, object_path: Path | None = None) -> bool:
    """Make sure the program runs and its map is pinned in pin_dir; True if loaded now.

    Call it after the endpoint datapath is pinned there: the program shares
    that datapath's ``axo_lxc_ip`` (this node's endpoint addresses)."""
    pin_dir.mkdir(parents=True, exist_ok=True)
    _check_map(pin_dir)
    if all((pin_dir / name).exists() for name in (MAP_NAME, PROG_PIN, LINK_PIN)):
        return False
    path = object_path or Path(os.environ.get(OBJECT_ENV) or OBJECT)
    if not path.is_file():
        raise TcpRetransError(f"BPF object {path} is missing (make -C bpf builds it)")
    libbpf.load_and_pin(path, pin_dir, [PROGRAM])
    _attach(pin_dir)
    return True


def _attach(pin_dir: Path) -> None:
    """Attach the pinned program and pin the link, replacing an older link's pin."""
    prog = bpfsys.obj_get(pin_dir / PROG_PIN)
    try:
        attr = _RawTpAttr(prog_fd=prog)
        link = bpfsys.bpf(_RAW_TRACEPOINT_OPEN, attr, f"attaching {PROGRAM} to tp_btf")
    except OSError as exc:
        raise TcpRetransError(exc.strerror) from exc  # "attaching ...: <errno text>"
    finally:
        os.close(prog)
    try:
        # The old link (if any) goes with its pin: one program attached at a time.
        (pin_dir / LINK_PIN).unlink(missing_ok=True)
        bpfsys.obj_pin(link, pin_dir / LINK_PIN)
    finally:
        os.close(link)


def attached(pin_dir: Path) -> bool:
    """Whether the link pin (and so the attachment) exists."""
    return (pin_dir / LINK_PIN).exists()


def detach(pin_dir: Path) -> bool:
    """Stop counting (the map stays); False if it was not attached."""
    link = pin_dir / LINK_PIN
    if not link.exists():
        return False
    link.unlink()
    return True


def read(pin_dir: Path) -> list[RetransEntry]:
    """Every flow in the pinned map, most retransmissions first."""
    with bpfsys.BpfMap.open_pinned(pin_dir / MAP_NAME) as m:
        entries = [decode(k, v) for k, v in m.items()]
    return sorted(entries, key=lambda e: (-e.segments, e.saddr, e.sport, e.daddr, e.dport))
