"""Loading, adopting, attaching and removing the node's datapath (``bpf/bpf_lxc.o``).

One object is loaded per node, into a pin directory on a bpffs
(``/sys/fs/bpf/axoneme`` on a real node, one per node in the lab). Maps are
``LIBBPF_PIN_BY_NAME``: libbpf pins them there on the first load and reuses
them on every later load. Programs are pinned as ``prog_<name>``.

Agent restarts must not disturb traffic, so :meth:`Datapath.open` *adopts*
what a previous run pinned: when every program and map pin exists it opens
them and loads nothing, so the tc filters attached by the previous run keep
running the very same programs. ``force_reload=True`` loads the object again
(maps still reused) and atomically replaces the program pins; attachments
then move to the new programs with :meth:`Datapath.attach`, which replaces
our tc filter in place.

Attachment is tc clsact through libbpf's netlink calls, in the calling
thread's network namespace (the agent runs inside its node's netns).
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from pathlib import Path

from axoneme.datapath.linux import bpfsys, libbpf
from axoneme.datapath.linux.maps import (
    CT_KEY,
    CT_VALUE,
    DATAPATH_CONFIG,
    FRAG_KEY,
    FRAG_PORTS,
    IPCACHE_KEY,
    IPCACHE_VALUE,
    LXC_INFO,
    MAP_NAMES,
    METRIC,
    POLICY_CIDR_KEY,
    POLICY_KEY,
    PORTS_KEY,
    PORTS_VALUE,
    ConfigMap,
    CTMap,
    IPCacheMap,
    LxcIPMap,
    LxcMap,
    MetricsMap,
    PolicyCIDRMap,
    PolicyMap,
    PortsMap,
)
from axoneme.datapath.linux.ringbuf import EventReader

__all__ = [
    "DEFAULT_OBJECT",
    "OBJECT_ENV",
    "PROGRAMS",
    "Datapath",
    "DatapathError",
    "ensure_bpffs",
]

log = logging.getLogger("axoneme.datapath.loader")

OBJECT_ENV = "AXONEME_BPF_OBJECT"
# src/axoneme/datapath/linux/loader.py -> the checkout's bpf/build/
DEFAULT_OBJECT = Path(__file__).resolve().parents[4] / "bpf" / "build" / "bpf_lxc.o"
BPFFS_ROOT = Path("/sys/fs/bpf")
BPFFS_MAGIC = 0xCAFE4A11

# program -> the tc hook of the host-side veth it runs on
PROGRAMS = {"from_container": libbpf.BPF_TC_INGRESS, "to_container": libbpf.BPF_TC_EGRESS}
# The overlay program (tc ingress of the VXLAN device) lives in its own object
# beside the endpoint one; it shares every map through the pins.
OVERLAY_OBJECT_NAME = "bpf_overlay.o"
OVERLAY_PROGRAM = "from_overlay"

# (key size, value size) each pinned map must have to be adopted; 0 for the ring.
_MAP_SIZES = {
    "axo_lxc": (4, LXC_INFO.size),
    "axo_ipcache": (IPCACHE_KEY.size, IPCACHE_VALUE.size),
    "axo_policy": (POLICY_KEY.size, 4),
    "axo_policy_cidr": (POLICY_CIDR_KEY.size, 4),
    "axo_policy_ports": (PORTS_KEY.size, PORTS_VALUE.size),
    "axo_ct": (CT_KEY.size, CT_VALUE.size),
    "axo_events": (0, 0),
    "axo_metrics": (4, METRIC.size),
    "axo_lxc_ip": (4, 4),
    "axo_config": (4, DATAPATH_CONFIG.size),
    "axo_frag": (FRAG_KEY.size, FRAG_PORTS.size),
}
assert set(_MAP_SIZES) == set(MAP_NAMES)


class DatapathError(RuntimeError):
    """The datapath cannot be opened as asked (bpffs, stale pins, missing object)."""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]


def _fs_magic(path: Path) -> int:
    buf = ctypes.create_string_buffer(128)  # struct statfs; f_type is the first long
    if _libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"statfs {path}: {os.strerror(err)}")
    return int.from_bytes(buf.raw[:8], "little")


def ensure_bpffs(pin_dir: Path) -> None:
    """Make sure pin_dir lives on a bpffs, mounting one at /sys/fs/bpf if it is
    missing there (nothing mounts it on this distribution). The mount stays."""
    existing = pin_dir
    while not existing.exists():
        existing = existing.parent
    if _fs_magic(existing) == BPFFS_MAGIC:
        return
    if BPFFS_ROOT in pin_dir.parents and _fs_magic(BPFFS_ROOT) != BPFFS_MAGIC:
        if _libc.mount(b"bpf", os.fsencode(BPFFS_ROOT), b"bpf", 0, None) != 0:
            err = ctypes.get_errno()
            raise DatapathError(f"mounting bpffs at {BPFFS_ROOT}: {os.strerror(err)}")
        log.info("mounted bpffs at %s", BPFFS_ROOT)
        return
    raise DatapathError(f"{pin_dir} is not on a bpffs (mount -t bpf bpf <dir>)")


_program_pin = libbpf.program_pin


class Datapath:
    """The node's loaded datapath: program fds, typed maps, attach/detach.

    The map objects share pre-allocated syscall buffers: use them from one
    thread, or :meth:`open_map` a private one for another thread."""

    def __init__(
        self,
        pin_dir: Path,
        programs: dict[str, int],
        reused: bool,
        load_seconds: float,
    ) -> None:
        self.pin_dir = pin_dir
        self.reused = reused  # True: adopted a previous run's programs, nothing loaded
        self.load_seconds = load_seconds
        self._programs = programs
        self.lxc = LxcMap.open(pin_dir)
        self.ipcache = IPCacheMap.open(pin_dir)
        self.policy = PolicyMap.open(pin_dir)
        self.policy_cidr = PolicyCIDRMap.open(pin_dir)
        self.ports = PortsMap.open(pin_dir)
        self.ct = CTMap.open(pin_dir)
        self.metrics = MetricsMap.open(pin_dir)
        self.lxc_ip = LxcIPMap.open(pin_dir)
        self.config = ConfigMap.open(pin_dir)

    # ---- open / close ----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        pin_dir: Path,
        *,
        object_path: Path | None = None,
        force_reload: bool = False,
    ) -> Datapath:
        """Adopt the datapath pinned in pin_dir, or load it there.

        Adopting needs every program and map pin; otherwise (or with
        ``force_reload``) the object is loaded, reusing whichever maps are
        pinned, and the program pins are replaced."""
        pin_dir = Path(pin_dir)
        ensure_bpffs(pin_dir)
        pin_dir.mkdir(parents=True, exist_ok=True)
        _check_pinned_maps(pin_dir)
        path = object_path or Path(os.environ.get(OBJECT_ENV) or DEFAULT_OBJECT)
        overlay = path.parent / OVERLAY_OBJECT_NAME
        names = [*PROGRAMS, *([OVERLAY_PROGRAM] if overlay.is_file() else [])]
        pins = [_program_pin(pin_dir, name) for name in names]
        pinned_maps = all((pin_dir / name).exists() for name in MAP_NAMES)
        if not force_reload and pinned_maps and all(p.exists() for p in pins):
            programs = _open_programs(pin_dir)
            try:
                return cls(pin_dir, programs, reused=True, load_seconds=0.0)
            except BaseException:
                _close_all(programs)
                raise
        if not path.is_file():
            raise DatapathError(f"BPF object {path} is missing (make -C bpf builds it)")
        started = time.perf_counter()
        libbpf.load_and_pin(path, pin_dir, list(PROGRAMS))
        if overlay.is_file():
            libbpf.load_and_pin(overlay, pin_dir, [OVERLAY_PROGRAM])
        elapsed = time.perf_counter() - started
        programs = _open_programs(pin_dir)
        log.info("loaded %s into %s in %.1f ms", path, pin_dir, elapsed * 1e3)
        try:
            return cls(pin_dir, programs, reused=False, load_seconds=elapsed)
        except BaseException:
            _close_all(programs)
            raise

    def close(self) -> None:
        """Close every fd. Pinned programs, maps and attachments stay."""
        for m in (self.lxc, self.ipcache, self.policy, self.policy_cidr, self.ports, self.ct,
                  self.metrics, self.lxc_ip, self.config):  # fmt: skip
            m.close()
        _close_all(self._programs)
        self._programs = {}

    def __enter__(self) -> Datapath:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def remove(pin_dir: Path) -> list[str]:
        """Unpin everything in pin_dir and remove it (lab down, uninstall).

        Programs still attached keep running until their device goes or they
        are detached; maps live as long as a program or fd uses them."""
        pin_dir = Path(pin_dir)
        removed: list[str] = []
        if not pin_dir.is_dir():
            return removed
        if _fs_magic(pin_dir) != BPFFS_MAGIC:
            raise DatapathError(f"refusing to remove {pin_dir}: not on a bpffs")
        for entry in sorted(pin_dir.iterdir()):
            if entry.is_dir():
                Datapath.remove(entry)
            else:
                entry.unlink()
            removed.append(entry.name)
        pin_dir.rmdir()
        return removed

    # ---- programs and attachment -----------------------------------------------------

    def program_fd(self, name: str) -> int:
        return self._programs[name]

    def program_id(self, name: str) -> int:
        return bpfsys.prog_info(self._programs[name]).id

    def attach(self, ifindex: int) -> None:
        """Run both programs on a host-side pod device (idempotent; replaces ours)."""
        libbpf.tc_hook_create(ifindex)
        for name, point in PROGRAMS.items():
            libbpf.tc_attach(ifindex, point, self._programs[name])

    def attach_overlay(self, ifindex: int) -> None:
        """Run ``from_overlay`` on the VXLAN device's tc ingress (idempotent)."""
        if OVERLAY_PROGRAM not in self._programs:
            raise DatapathError(
                f"{OVERLAY_OBJECT_NAME} was not loaded (make -C bpf builds it): no tunnel mode"
            )
        libbpf.tc_hook_create(ifindex)
        libbpf.tc_attach(ifindex, libbpf.BPF_TC_INGRESS, self._programs[OVERLAY_PROGRAM])

    def detach(self, ifindex: int) -> bool:
        """Remove our filters from a device; False if none was attached."""
        found = False
        for point in PROGRAMS.values():
            found = libbpf.tc_detach(ifindex, point) or found
        return found

    def attached(self, ifindex: int) -> dict[str, int | None]:
        """The program id in each of our filter slots of a device (None: empty)."""
        return {name: libbpf.tc_query(ifindex, point) for name, point in PROGRAMS.items()}

    # ---- maps and events ---------------------------------------------------------------

    def open_map(self, name: str) -> bpfsys.BpfMap:
        """A private handle on a pinned map (for another thread); close it after use."""
        if name not in MAP_NAMES:
            raise KeyError(name)
        return bpfsys.BpfMap.open_pinned(self.pin_dir / name)

    def events(self) -> EventReader:
        """A consumer of ``axo_events`` (close it after use)."""
        fd = bpfsys.obj_get(self.pin_dir / "axo_events")
        try:
            return EventReader(fd)
        finally:
            os.close(fd)


def _open_programs(pin_dir: Path) -> dict[str, int]:
    programs: dict[str, int] = {}
    try:
        for name in [*PROGRAMS, OVERLAY_PROGRAM]:
            pin = _program_pin(pin_dir, name)
            if name == OVERLAY_PROGRAM and not pin.exists():
                continue  # built without the overlay object: tunnel mode is unavailable
            programs[name] = bpfsys.obj_get(pin)
    except BaseException:
        _close_all(programs)
        raise
    return programs


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)


def _check_pinned_maps(pin_dir: Path) -> None:
    """Refuse pins from a build with other layouts: they would be misread."""
    for name, (key_size, value_size) in _MAP_SIZES.items():
        path = pin_dir / name
        if not path.exists():
            continue
        try:
            fd = bpfsys.obj_get(path)
        except OSError as exc:
            raise DatapathError(f"{path} exists but cannot be opened: {exc}") from exc
        try:
            info = bpfsys.map_info(fd)
        finally:
            os.close(fd)
        if (info.key_size, info.value_size) != (key_size, value_size):
            raise DatapathError(
                f"pinned map {path} has key/value sizes {info.key_size}/{info.value_size}, "
                f"this build expects {key_size}/{value_size}: remove the pins "
                f"(Datapath.remove) to start over"
            )
