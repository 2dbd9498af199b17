"""A thin ctypes binding to the system libbpf (libbpf1 1.1.x, ``libbpf.so.1``).

Only what the loader needs: open an object with ``pin_root_path`` (maps marked
``LIBBPF_PIN_BY_NAME`` land in, or are reused from, that directory), load it,
find and pin programs, and attach programs to tc clsact hooks over netlink.
Map element access does not come through here (``bpfsys`` does it raw).

libbpf 1.1 knows only the old section names: every tc program is ``SEC("tc")``
and ingress/egress is chosen at attach time.

Network namespaces: ``tc_*`` open their netlink socket in the calling
*thread's* network namespace, and the ifindex is resolved there. An agent that
runs inside a node netns attaches to its own devices without doing anything
special; a caller elsewhere wraps the calls in ``kit.netns.entered``.

libbpf's log lines go to the ``axoneme.datapath.libbpf`` logger, and the last
ones are kept to explain a failure (``LibbpfError.log``: the verifier's output
when a load fails).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform
import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "BPF_TC_EGRESS",
    "BPF_TC_INGRESS",
    "SAMPLE_FN",
    "BpfObject",
    "LibbpfError",
    "lib",
    "load_and_pin",
    "program_pin",
    "tc_attach",
    "tc_detach",
    "tc_hook_create",
    "tc_hook_destroy",
    "tc_query",
]

log = logging.getLogger("axoneme.datapath.libbpf")

LIBBPF_SONAME = "libbpf.so.1"

BPF_TC_INGRESS = 1 << 0
BPF_TC_EGRESS = 1 << 1
BPF_TC_F_REPLACE = 1 << 0

# Handle and priority of our tc filters: fixed, so attach can replace in place
# (an agent restart or a program upgrade swaps the program atomically).
TC_HANDLE = 1
TC_PRIORITY = 1


class LibbpfError(OSError):
    """A libbpf call failed; ``log`` holds libbpf's recent messages (verifier log...)."""

    def __init__(self, err: int, message: str, log_lines: list[str] | None = None) -> None:
        super().__init__(err, message)
        self.log = log_lines or []

    def __str__(self) -> str:
        base = super().__str__()
        if not self.log:
            return base
        tail = "\n".join(self.log[-40:])
        return f"{base}\nlibbpf log:\n{tail}"


class _OpenOpts(ctypes.Structure):
    """struct bpf_object_open_opts (libbpf 1.1)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("object_name", ctypes.c_char_p),
        ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", ctypes.c_char_p),
        ("_attach_prog_fd", ctypes.c_uint32),
        ("kconfig", ctypes.c_char_p),
        ("btf_custom_path", ctypes.c_char_p),
        ("kernel_log_buf", ctypes.c_char_p),
        ("kernel_log_size", ctypes.c_size_t),
        ("kernel_log_level", ctypes.c_uint32),
    ]


class _TcHook(ctypes.Structure):
    """struct bpf_tc_hook."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("ifindex", ctypes.c_int),
        ("attach_point", ctypes.c_int),
        ("parent", ctypes.c_uint32),
    ]


class _TcOpts(ctypes.Structure):
    """struct bpf_tc_opts."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("prog_fd", ctypes.c_int),
        ("flags", ctypes.c_uint32),
        ("prog_id", ctypes.c_uint32),
        ("handle", ctypes.c_uint32),
        ("priority", ctypes.c_uint32),
    ]


# libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *fmt, va_list)
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
# ring_buffer_sample_fn: int (*)(void *ctx, void *data, size_t size)
SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()
_vsnprintf = ctypes.CDLL(None).vsnprintf
_vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
_vsnprintf.restype = ctypes.c_int


class _ThreadLog(threading.local):
    """libbpf calls the print hook synchronously, in the calling thread, so a
    per-thread buffer holds exactly the messages of this thread's last call."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=400)
        self.quiet = False  # expected warnings (clsact exists) go to DEBUG


_thread_log = _ThreadLog()


def _print(level: int, fmt: bytes | None, args: int | None) -> int:
    # On x86_64 a va_list argument is a pointer to the caller's va_list
    # record, which vsnprintf accepts as is.
    buf = ctypes.create_string_buffer(4096)
    _vsnprintf(buf, len(buf), fmt, args)
    text = buf.value.decode(errors="replace").rstrip("\n")
    _thread_log.lines.extend(text.splitlines())
    pylevel = logging.DEBUG if _thread_log.quiet else _LEVELS.get(level, logging.DEBUG)
    log.log(pylevel, "%s", text)
    return 0


_print_cb = _PRINT_FN(_print)  # kept alive for the process lifetime


def lib() -> ctypes.CDLL:
    """The loaded libbpf, with prototypes declared and the log hook installed."""
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _declare(ctypes.CDLL(LIBBPF_SONAME, use_errno=True))
        return _lib


def _declare(so: ctypes.CDLL) -> ctypes.CDLL:
    p, i, c = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    protos: dict[str, tuple[list[type], type | None]] = {
        "bpf_object__open_file": ([c, p], p),
        "bpf_object__load": ([p], i),
        "bpf_object__close": ([p], None),
        "bpf_object__find_program_by_name": ([p, c], p),
        "bpf_object__next_program": ([p, p], p),
        "bpf_object__find_map_by_name": ([p, c], p),
        "bpf_program__name": ([p], c),
        "bpf_program__fd": ([p], i),
        "bpf_program__pin": ([p, c], i),
        "bpf_map__fd": ([p], i),
        "bpf_map__pin_path": ([p], c),
        "libbpf_get_error": ([p], ctypes.c_long),
        "libbpf_set_print": ([_PRINT_FN], p),
        "bpf_tc_hook_create": ([p], i),
        "bpf_tc_hook_destroy": ([p], i),
        "bpf_tc_attach": ([p, p], i),
        "bpf_tc_detach": ([p, p], i),
        "bpf_tc_query": ([p, p], i),
        "ring_buffer__new": ([i, SAMPLE_FN, p, p], p),
        "ring_buffer__free": ([p], None),
        "ring_buffer__poll": ([p, i], i),
        "ring_buffer__consume": ([p], i),
        "ring_buffer__epoll_fd": ([p], i),
    }
    for name, (args, res) in protos.items():
        fn = getattr(so, name)
        fn.argtypes = args
        fn.restype = res
    if platform.machine() == "x86_64":
        so.libbpf_set_print(_print_cb)
    return so


def _log_mark() -> None:
    _thread_log.lines.clear()


def _fail(ret: int, what: str) -> LibbpfError:
    """libbpf returns -errno (and sets errno); build the error with its log."""
    err = -ret if ret < 0 else (ctypes.get_errno() or errno.EINVAL)
    return LibbpfError(err, f"{what}: {os.strerror(err)}", list(_thread_log.lines))


class BpfObject:
    """One opened (and then loaded) ELF object. Close it when done: programs
    and maps stay alive only through pins, attachments or other open fds."""

    def __init__(self, path: Path, pin_root: Path | None = None) -> None:
        so = lib()
        self.path = path
        opts = _OpenOpts(sz=ctypes.sizeof(_OpenOpts))
        self._pin_root = os.fsencode(pin_root) if pin_root is not None else None
        opts.pin_root_path = self._pin_root
        _log_mark()
        ptr = so.bpf_object__open_file(os.fsencode(path), ctypes.byref(opts))
        err = so.libbpf_get_error(ptr) if ptr else -errno.ENOENT
        if not ptr or err:
            raise _fail(int(err) or -errno.EINVAL, f"opening BPF object {path}")
        self._obj: int | None = ptr

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def handle(self) -> int:
        if self._obj is None:
            raise ValueError(f"BPF object {self.path} is closed")
        return self._obj

    def load(self) -> None:
        """Create (or reuse pinned) maps, load and verify every program."""
        _log_mark()
        ret = lib().bpf_object__load(self.handle)
        if ret:
            raise _fail(ret, f"loading BPF object {self.path}")

    def program_names(self) -> list[str]:
        so = lib()
        names = []
        prog = so.bpf_object__next_program(self.handle, None)
        while prog:
            names.append(so.bpf_program__name(prog).decode())
            prog = so.bpf_object__next_program(self.handle, prog)
        return names

    def _program(self, name: str) -> int:
        prog = lib().bpf_object__find_program_by_name(self.handle, name.encode())
        if not prog:
            raise LibbpfError(errno.ENOENT, f"no program {name!r} in {self.path}")
        return int(prog)

    def program_fd(self, name: str) -> int:
        """The loaded program's fd, owned by the object (dup it to keep it)."""
        fd = lib().bpf_program__fd(self._program(name))
        if fd < 0:
            raise _fail(fd, f"program {name!r} of {self.path} is not loaded")
        return int(fd)

    def pin_program(self, name: str, path: Path) -> None:
        ret = lib().bpf_program__pin(self._program(name), os.fsencode(path))
        if ret:
            raise _fail(ret, f"pinning program {name!r} at {path}")

    def map_fd(self, name: str) -> int:
        so = lib()
        m = so.bpf_object__find_map_by_name(self.handle, name.encode())
        if not m:
            raise LibbpfError(errno.ENOENT, f"no map {name!r} in {self.path}")
        fd = so.bpf_map__fd(m)
        if fd < 0:
            raise _fail(fd, f"map {name!r} of {self.path} is not created")
        return int(fd)

    def close(self) -> None:
        if self._obj is not None:
            lib().bpf_object__close(self._obj)
            self._obj = None


def program_pin(pin_dir: Path, name: str) -> Path:
    """Where a program of ours is pinned: bpffs names cannot hold dots."""
    return pin_dir / f"prog_{name}"


def load_and_pin(path: Path, pin_dir: Path, names: Iterable[str]) -> None:
    """Load the object (its maps pinned by name in pin_dir) and pin each named program."""
    with BpfObject(path, pin_root=pin_dir) as obj:
        obj.load()
        for name in names:
            # Pin beside, then rename over the old pin: never a moment without one.
            fresh = pin_dir / f"prog_{name}_new"
            fresh.unlink(missing_ok=True)
            obj.pin_program(name, fresh)
            os.replace(fresh, program_pin(pin_dir, name))


# ---- tc clsact over netlink --------------------------------------------------------


def _hook(ifindex: int, attach_point: int) -> _TcHook:
    return _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex, attach_point=attach_point)


def _opts(**fields: int) -> _TcOpts:
    return _TcOpts(sz=ctypes.sizeof(_TcOpts), **fields)


def tc_hook_create(ifindex: int) -> bool:
    """Add the clsact qdisc to ifindex; False if it was already there."""
    hook = _hook(ifindex, BPF_TC_INGRESS)
    _log_mark()
    # An existing clsact makes libbpf warn "Exclusivity flag on": expected here.
    _thread_log.quiet = True
    try:
        ret = lib().bpf_tc_hook_create(ctypes.byref(hook))
    finally:
        _thread_log.quiet = False
    if ret == -errno.EEXIST:
        return False
    if ret:
        raise _fail(ret, f"creating clsact on ifindex {ifindex}")
    return True


def tc_hook_destroy(ifindex: int) -> bool:
    """Remove the clsact qdisc (with every filter on it); False if there was none."""
    hook = _hook(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS)
    ret = lib().bpf_tc_hook_destroy(ctypes.byref(hook))
    if ret in (-errno.ENOENT, -errno.EINVAL, -errno.ENODEV):
        return False
    if ret:
        raise _fail(ret, f"removing clsact from ifindex {ifindex}")
    return True


def tc_attach(ifindex: int, attach_point: int, prog_fd: int) -> int:
    """Attach (or atomically replace) our direct-action filter; returns the program id."""
    hook = _hook(ifindex, attach_point)
    opts = _opts(prog_fd=prog_fd, flags=BPF_TC_F_REPLACE, handle=TC_HANDLE, priority=TC_PRIORITY)
    _log_mark()
    ret = lib().bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts))
    if ret:
        raise _fail(ret, f"attaching to ifindex {ifindex} {_point(attach_point)}")
    return int(opts.prog_id)


def tc_detach(ifindex: int, attach_point: int) -> bool:
    """Remove our filter; False if it was not attached (or the device is gone)."""
    hook = _hook(ifindex, attach_point)
    opts = _opts(handle=TC_HANDLE, priority=TC_PRIORITY)
    _log_mark()
    ret = lib().bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts))
    if ret in (-errno.ENOENT, -errno.ENODEV, -errno.EINVAL):
        return False
    if ret:
        raise _fail(ret, f"detaching from ifindex {ifindex} {_point(attach_point)}")
    return True


def tc_query(ifindex: int, attach_point: int) -> int | None:
    """Id of the program in our filter slot, or None when nothing is attached."""
    hook = _hook(ifindex, attach_point)
    opts = _opts(handle=TC_HANDLE, priority=TC_PRIORITY)
    _log_mark()
    ret = lib().bpf_tc_query(ctypes.byref(hook), ctypes.byref(opts))
    if ret in (-errno.ENOENT, -errno.ENODEV, -errno.EINVAL):
        return None
    if ret:
        raise _fail(ret, f"querying ifindex {ifindex} {_point(attach_point)}")
    return int(opts.prog_id)


def _point(attach_point: int) -> str:
    return "ingress" if attach_point == BPF_TC_INGRESS else "egress"
