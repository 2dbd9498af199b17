"""The raw ``bpf(2)`` syscall from Python: pinned objects, map elements, test runs.

libbpf (``libbpf.py``) creates, loads and pins; everything the agent does
afterwards on the hot path goes through this module, straight to the kernel:
no libbpf state, no subprocesses. Each :class:`BpfMap` owns one pre-built
``union bpf_attr`` and key/value buffers, so an update is one memcpy of the
key and value plus one syscall (about 450k ops/s from one Python thread on
the reference VM). Buffers are shared per instance, so one ``BpfMap`` must
not be used from two threads at once: open one per thread instead.

Errors are ``OSError`` with the kernel's errno, naming the command and the map.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BPF_ANY",
    "BPF_EXIST",
    "BPF_NOEXIST",
    "BpfMap",
    "MapInfo",
    "MapType",
    "ProgInfo",
    "TestRun",
    "bpf",
    "map_info",
    "nr_possible_cpus",
    "obj_get",
    "obj_pin",
    "prog_info",
    "prog_test_run",
]

# x86_64 and aarch64 syscall numbers (the only ones this project runs on).
_NR_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)

# enum bpf_cmd
_MAP_LOOKUP_ELEM = 1
_MAP_UPDATE_ELEM = 2
_MAP_DELETE_ELEM = 3
_MAP_GET_NEXT_KEY = 4
_OBJ_PIN = 6
_OBJ_GET = 7
_PROG_TEST_RUN = 10
_OBJ_GET_INFO_BY_FD = 15
_MAP_LOOKUP_BATCH = 24
_MAP_UPDATE_BATCH = 26
_MAP_DELETE_BATCH = 27

_CMD_NAMES = {
    _MAP_LOOKUP_ELEM: "MAP_LOOKUP_ELEM",
    _MAP_UPDATE_ELEM: "MAP_UPDATE_ELEM",
    _MAP_DELETE_ELEM: "MAP_DELETE_ELEM",
    _MAP_GET_NEXT_KEY: "MAP_GET_NEXT_KEY",
    _OBJ_PIN: "OBJ_PIN",
    _OBJ_GET: "OBJ_GET",
    _PROG_TEST_RUN: "PROG_TEST_RUN",
    _OBJ_GET_INFO_BY_FD: "OBJ_GET_INFO_BY_FD",
    _MAP_LOOKUP_BATCH: "MAP_LOOKUP_BATCH",
    _MAP_UPDATE_BATCH: "MAP_UPDATE_BATCH",
    _MAP_DELETE_BATCH: "MAP_DELETE_BATCH",
}

# map update flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

# The kernel's internal "operation not supported" (not in Python's errno).
_ENOTSUPP = 524


class MapType:
    """``enum bpf_map_type`` values the datapath uses."""

    HASH = 1
    ARRAY = 2
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    RINGBUF = 27

    PERCPU = frozenset({PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH})
    # Types whose MAP_*_BATCH commands the kernel implements.
    BATCH = frozenset({HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH, ARRAY, PERCPU_ARRAY})


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong]
_syscall.restype = ctypes.c_long


class _ElemAttr(ctypes.Structure):
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),  # also next_key
        ("flags", ctypes.c_uint64),
    ]


class _ObjAttr(ctypes.Structure):
    _fields_ = [
        ("pathname", ctypes.c_uint64),
        ("bpf_fd", ctypes.c_uint32),
        ("file_flags", ctypes.c_uint32),
        ("path_fd", ctypes.c_int32),
        ("pad", ctypes.c_uint32),
    ]


class _InfoAttr(ctypes.Structure):
    _fields_ = [
        ("bpf_fd", ctypes.c_uint32),
        ("info_len", ctypes.c_uint32),
        ("info", ctypes.c_uint64),
    ]


class _BatchAttr(ctypes.Structure):
    _fields_ = [
        ("in_batch", ctypes.c_uint64),
        ("out_batch", ctypes.c_uint64),
        ("keys", ctypes.c_uint64),
        ("values", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("map_fd", ctypes.c_uint32),
        ("elem_flags", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _TestAttr(ctypes.Structure):
    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("data_in", ctypes.c_uint64),
        ("data_out", ctypes.c_uint64),
        ("repeat", ctypes.c_uint32),
        ("duration", ctypes.c_uint32),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_uint64),
        ("ctx_out", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


def _error(cmd: int, what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"bpf({_CMD_NAMES.get(cmd, cmd)}) on {what}: {os.strerror(err)}")


def _call(cmd: int, attr: ctypes.Structure) -> int:
    return int(_syscall(_NR_BPF, cmd, ctypes.addressof(attr), ctypes.sizeof(attr)))


def bpf(cmd: int, attr: ctypes.Structure, what: str) -> int:
    """bpf(cmd, attr) for commands without a wrapper here; OSError naming ``what``."""
    ret = _call(cmd, attr)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


@functools.cache
def nr_possible_cpus() -> int:
    """Number of possible CPUs: the per-CPU value count of per-CPU maps."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


# ---- pinned objects and object info ----------------------------------------------


def obj_get(path: str | os.PathLike[str]) -> int:
    """Open a pinned map or program; returns a new fd the caller must close."""
    raw = os.fsencode(path)
    name = ctypes.create_string_buffer(raw)
    attr = _ObjAttr(pathname=ctypes.addressof(name))
    fd = _call(_OBJ_GET, attr)
    if fd < 0:
        raise _error(_OBJ_GET, os.fsdecode(raw))
    return fd


def obj_pin(fd: int, path: str | os.PathLike[str]) -> None:
    """Pin the map or program behind fd at path (on a bpffs)."""
    raw = os.fsencode(path)
    name = ctypes.create_string_buffer(raw)
    attr = _ObjAttr(pathname=ctypes.addressof(name), bpf_fd=fd)
    if _call(_OBJ_PIN, attr) < 0:
        raise _error(_OBJ_PIN, os.fsdecode(raw))


@dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str


@dataclass(frozen=True)
class ProgInfo:
    type: int
    id: int
    tag: str  # hex, as bpftool shows it
    name: str


def _info(fd: int, size: int, what: str) -> bytes:
    buf = ctypes.create_string_buffer(size)
    attr = _InfoAttr(bpf_fd=fd, info_len=size, info=ctypes.addressof(buf))
    if _call(_OBJ_GET_INFO_BY_FD, attr) < 0:
        raise _error(_OBJ_GET_INFO_BY_FD, what)
    return buf.raw


def map_info(fd: int) -> MapInfo:
    raw = _info(fd, 88, f"map fd {fd}")  # struct bpf_map_info up to map_extra
    words = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, 24, 4)]
    name = raw[24:40].split(b"\0", 1)[0].decode(errors="replace")
    return MapInfo(words[0], words[1], words[2], words[3], words[4], words[5], name)


def prog_info(fd: int) -> ProgInfo:
    raw = _info(fd, 80, f"program fd {fd}")  # struct bpf_prog_info up to name
    name = raw[64:80].split(b"\0", 1)[0].decode(errors="replace")
    return ProgInfo(
        type=int.from_bytes(raw[0:4], "little"),
        id=int.from_bytes(raw[4:8], "little"),
        tag=raw[8:16].hex(),
        name=name,
    )


# ---- BPF_PROG_TEST_RUN --------------------------------------------------------------


@dataclass(frozen=True)
class TestRun:
    """One ``BPF_PROG_TEST_RUN``: the program's return value, the mean run time
    in ns over ``repeat`` runs, and the packet and context as the program left them."""

    __test__ = False  # not a pytest class

    retval: int
    duration_ns: int
    data: bytes
    ctx: bytes


def prog_test_run(
    prog_fd: int,
    data: bytes,
    *,
    ctx: bytes | None = None,
    repeat: int = 1,
    data_out_size: int | None = None,
) -> TestRun:
    """Run the program on ``data`` (for tc programs: an Ethernet frame) in the
    calling thread's network namespace. ``ctx`` is a ``struct __sk_buff`` prefix
    (ifindex, cb[] ...); the kernel copies cb[] back into the returned ``ctx``."""
    data_in = ctypes.create_string_buffer(data, len(data))
    out_size = data_out_size if data_out_size is not None else len(data) + 256
    data_out = ctypes.create_string_buffer(out_size)
    attr = _TestAttr(
        prog_fd=prog_fd,
        data_size_in=len(data),
        data_size_out=out_size,
        data_in=ctypes.addressof(data_in),
        data_out=ctypes.addressof(data_out),
        repeat=repeat,
    )
    ctx_in = ctx_out = None
    if ctx is not None:
        ctx_in = ctypes.create_string_buffer(ctx, len(ctx))
        ctx_out = ctypes.create_string_buffer(len(ctx))
        attr.ctx_size_in = attr.ctx_size_out = len(ctx)
        attr.ctx_in = ctypes.addressof(ctx_in)
        attr.ctx_out = ctypes.addressof(ctx_out)
    if _call(_PROG_TEST_RUN, attr) < 0:
        raise _error(_PROG_TEST_RUN, f"program fd {prog_fd}")
    return TestRun(
        retval=ctypes.c_int32(attr.retval).value,
        duration_ns=attr.duration,
        data=data_out.raw[: attr.data_size_out],
        ctx=ctx_out.raw[: attr.ctx_size_out] if ctx_out is not None else b"",
    )


# ---- maps -------------------------------------------------------------------------------


class BpfMap:
    """One open map: byte-level element operations on pre-allocated buffers.

    Keys and values are ``bytes`` of exactly ``key_size`` / ``value_size``; for
    per-CPU maps a value is ``nr_possible_cpus()`` slots of ``value_size``
    rounded up to 8 bytes (the kernel's layout), in and out.
    """

    def __init__(
        self,
        fd: int,
        *,
        name: str,
        map_type: int,
        key_size: int,
        value_size: int,
        max_entries: int,
    ) -> None:
        self.fd = fd
        self.name = name
        self.type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.percpu = map_type in MapType.PERCPU
        # Bytes of one value as the syscall sees it (all CPUs for per-CPU maps).
        self.value_bytes = (
            ((value_size + 7) // 8) * 8 * nr_possible_cpus() if self.percpu else value_size
        )
        self._key = ctypes.create_string_buffer(max(key_size, 1))
        self._next = ctypes.create_string_buffer(max(key_size, 1))
        self._value = ctypes.create_string_buffer(max(self.value_bytes, 1))
        self._attr = _ElemAttr(map_fd=fd)
        self._attr_addr = ctypes.addressof(self._attr)
        self._attr_size = ctypes.sizeof(self._attr)
        self._key_addr = ctypes.addressof(self._key)
        self._next_addr = ctypes.addressof(self._next)
        self._value_addr = ctypes.addressof(self._value)

    @classmethod
    def from_fd(cls, fd: int, name: str | None = None) -> BpfMap:
        """Wrap an fd (taking ownership); sizes and type come from the kernel."""
        info = map_info(fd)
        return cls(
            fd,
            name=name or info.name,
            map_type=info.type,
            key_size=info.key_size,
            value_size=info.value_size,
            max_entries=info.max_entries,
        )

    @classmethod
    def open_pinned(cls, path: str | os.PathLike[str]) -> BpfMap:
        fd = obj_get(path)
        try:
            return cls.from_fd(fd, name=Path(path).name)
        except BaseException:
            os.close(fd)
            raise

    def __repr__(self) -> str:
        return f"BpfMap({self.name!r}, fd={self.fd}, type={self.type})"

    def __enter__(self) -> BpfMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _check(self, key: bytes, value: bytes | None = None) -> None:
        if len(key) != self.key_size:
            raise ValueError(f"{self.name}: key is {len(key)} bytes, map has {self.key_size}")
        if value is not None and len(value) != self.value_bytes:
            raise ValueError(
                f"{self.name}: value is {len(value)} bytes, map has {self.value_bytes}"
            )

    def _check_all(self, keys: Sequence[bytes], values: Sequence[bytes] = ()) -> None:
        """_check for many elements: the sizes compared in C, item by item only
        to name the wrong one (a batch is 10,000s of elements)."""
        if set(map(len, keys)) | {self.key_size} != {self.key_size} or (
            values and set(map(len, values)) | {self.value_bytes} != {self.value_bytes}
        ):
            for i, key in enumerate(keys):
                self._check(key, values[i] if values else None)

    # Single-element operations. The attr struct is rebuilt field by field
    # (cheap attribute stores) because DELETE_ELEM and LOOKUP need the fields
    # after the key zeroed, and UPDATE needs them set.

    def lookup(self, key: bytes) -> bytes | None:
        """The value at key (LPM tries: of the longest prefix matching it), or None."""
        self._check(key)
        self._key.raw = key
        attr = self._attr
        attr.key = self._key_addr
        attr.value = self._value_addr
        attr.flags = 0
        if _syscall(_NR_BPF, _MAP_LOOKUP_ELEM, self._attr_addr, self._attr_size) < 0:
            if ctypes.get_errno() == errno.ENOENT:
                return None
            raise _error(_MAP_LOOKUP_ELEM, self.name)
        return self._value.raw[: self.value_bytes]

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        self._check(key, value)
        self._key.raw = key
        self._value.raw = value
        attr = self._attr
        attr.key = self._key_addr
        attr.value = self._value_addr
        attr.flags = flags
        if _syscall(_NR_BPF, _MAP_UPDATE_ELEM, self._attr_addr, self._attr_size) < 0:
            raise _error(_MAP_UPDATE_ELEM, self.name)

    def delete(self, key: bytes) -> bool:
        """Remove key; False if it was not there."""
        self._check(key)
        self._key.raw = key
        attr = self._attr
        attr.key = self._key_addr
        attr.value = 0
        attr.flags = 0
        if _syscall(_NR_BPF, _MAP_DELETE_ELEM, self._attr_addr, self._attr_size) < 0:
            if ctypes.get_errno() == errno.ENOENT:
                return False
            raise _error(_MAP_DELETE_ELEM, self.name)
        return True

    def next_key(self, key: bytes | None) -> bytes | None:
        """The key after ``key`` (the first key for None), or None at the end."""
        attr = self._attr
        if key is None:
            attr.key = 0
        else:
            self._check(key)
            self._key.raw = key
            attr.key = self._key_addr
        attr.value = self._next_addr
        attr.flags = 0
        if _syscall(_NR_BPF, _MAP_GET_NEXT_KEY, self._attr_addr, self._attr_size) < 0:
            if ctypes.get_errno() == errno.ENOENT:
                return None
            raise _error(_MAP_GET_NEXT_KEY, self.name)
        return self._next.raw[: self.key_size]

    def iter_keys(self) -> Iterator[bytes]:
        """Every key, by GET_NEXT_KEY. Concurrent deletes may restart a hash walk."""
        key = self.next_key(None)
        while key is not None:
            yield key
            key = self.next_key(key)

    def items(self) -> list[tuple[bytes, bytes]]:
        """Every (key, value): by batch lookup where the kernel has it, else key by key."""
        if self.type in MapType.BATCH:
            try:
                return self.lookup_batch()
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, _ENOTSUPP):
                    raise
        out = []
        for key in list(self.iter_keys()):
            value = self.lookup(key)
            if value is not None:  # deleted meanwhile
                out.append((key, value))
        return out

    # Batch operations (hash and array maps; not LPM tries or ring buffers).

    def lookup_batch(self, chunk: int | None = None) -> list[tuple[bytes, bytes]]:
        """Every (key, value) with ``MAP_LOOKUP_BATCH``, ``chunk`` elements per call.

        By default a call moves about 4 MiB of values (at most 4096 elements): a
        fixed 4096 would allocate and copy 256 MiB a call for 64 KiB Maglev tables."""
        ks, vs = self.key_size, self.value_bytes
        if chunk is None:
            chunk = max(16, min(4096, (4 << 20) // max(vs, 1)))
        keys = ctypes.create_string_buffer(ks * chunk)
        values = ctypes.create_string_buffer(vs * chunk)
        token_in = ctypes.create_string_buffer(max(ks, 8))
        token_out = ctypes.create_string_buffer(max(ks, 8))
        out: list[tuple[bytes, bytes]] = []
        first = True
        while True:
            attr = _BatchAttr(
                in_batch=0 if first else ctypes.addressof(token_in),
                out_batch=ctypes.addressof(token_out),
                keys=ctypes.addressof(keys),
                values=ctypes.addressof(values),
                count=chunk,
                map_fd=self.fd,
            )
            ret = _call(_MAP_LOOKUP_BATCH, attr)
            err = ctypes.get_errno() if ret < 0 else 0
            if ret < 0 and err != errno.ENOENT:
                if err == errno.ENOSPC and chunk < (1 << 20):
                    # A hash bucket holds more than chunk elements: retry bigger.
                    return self.lookup_batch(chunk * 4)
                raise _error(_MAP_LOOKUP_BATCH, self.name)
            kraw, vraw = keys.raw, values.raw
            out += [
                (kraw[i * ks : (i + 1) * ks], vraw[i * vs : (i + 1) * vs])
                for i in range(attr.count)
            ]
            if err == errno.ENOENT:
                return out
            token_in.raw = token_out.raw
            first = False

    def update_batch(self, items: Sequence[tuple[bytes, bytes]], flags: int = BPF_ANY) -> None:
        """Write many elements with one ``MAP_UPDATE_BATCH`` (about 3M/s)."""
        if items:
            ks, vs = zip(*items, strict=True)
            self.update_batch_kv(ks, vs, flags)

    def update_batch_kv(
        self, keys: Sequence[bytes], values: Sequence[bytes], flags: int = BPF_ANY
    ) -> None:
        """:meth:`update_batch` with keys and values apart (as a dict holds them)."""
        if len(keys) != len(values):
            raise ValueError(f"{self.name}: {len(keys)} keys but {len(values)} values")
        if not keys:
            return
        self._check_all(keys, values)
        kbuf = ctypes.create_string_buffer(b"".join(keys))
        vbuf = ctypes.create_string_buffer(b"".join(values))
        attr = _BatchAttr(
            keys=ctypes.addressof(kbuf),
            values=ctypes.addressof(vbuf),
            count=len(keys),
            map_fd=self.fd,
            elem_flags=flags,
        )
        if _call(_MAP_UPDATE_BATCH, attr) < 0:
            raise _error(_MAP_UPDATE_BATCH, f"{self.name} ({attr.count} of {len(keys)} done)")

    def delete_batch(self, keys: Sequence[bytes]) -> None:
        """Remove many keys with one ``MAP_DELETE_BATCH``; every key must exist."""
        if not keys:
            return
        self._check_all(keys)
        buf = ctypes.create_string_buffer(b"".join(keys))
        attr = _BatchAttr(keys=ctypes.addressof(buf), count=len(keys), map_fd=self.fd)
        if _call(_MAP_DELETE_BATCH, attr) < 0:
            raise _error(_MAP_DELETE_BATCH, f"{self.name} ({attr.count} of {len(keys)} done)")

    def clear(self) -> int:
        """Delete every element; returns how many were deleted."""
        count = 0
        while True:
            keys = list(self.iter_keys())
            if not keys:
                return count
            for key in keys:
                count += self.delete(key)
