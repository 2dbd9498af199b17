"""The ``axoneme-cni`` plugin: check what the runtime passed, forward it to the agent.

A container runtime execs this module once per pod operation (CNI spec 1.0.0,
plus the 1.1.0 verbs GC and STATUS). The agent does all the work; this process
checks the shape of the call, so that a malformed call changes nothing, then
relays the call to the agent's local API (``api/agent-api.md``) and prints the
answer.

Start-up time is the budget (``cni-runtime-feasibility.md`` §4: 13.8 ms with
``json``/``socket``, 7.5 ms with their C halves). So this module imports only
modules built into the interpreter: ``posix``, ``sys``, ``_json`` and
``_socket``. It never imports ``os`` (1.2 ms), ``json``, ``socket``, ``typing``
or the rest of ``axoneme``. Run it through the launcher that
``axoneme.cni.install`` writes (``#!/usr/bin/python3 -IS``), not the console
script, whose wrapper imports ``importlib.metadata``.

Checks run in this order; the first failure is printed as a spec error object
on stdout, with exit status 1, and the agent is not contacted:

====  ==========================================================  ====
step  check                                                        code
====  ==========================================================  ====
1     ``CNI_COMMAND`` set and one of ADD DEL CHECK GC STATUS        4
      VERSION (VERSION is answered here and ignores the rest)
2     stdin readable                                               5
3     stdin is UTF-8 JSON, and a JSON object                       6
4     ``cniVersion`` is a supported version string                 1
5     the version has the command (CHECK >= 0.4.0, GC and STATUS   1
      >= 1.1.0)
6     required variables set: ADD/CHECK need ``CNI_CONTAINERID``,  4
      ``CNI_NETNS``, ``CNI_IFNAME``; DEL the first and last
7     ``CNI_CONTAINERID`` syntax, ``CNI_IFNAME`` a Linux ifname,   4
      ``CNI_NETNS`` an absolute path (ADD/CHECK)
8     ``CNI_ARGS`` is ``K=V;K=V``                                   4
9     ``name``, ``type``, ``agentSocket``, ``prevResult``,         7
      ``cni.dev/valid-attachments`` (GC) well-formed
10    ADD/CHECK: the ``CNI_NETNS`` path exists                     3
====  ==========================================================  ====

A missing netns is code 3, "container unknown or does not exist", which tells
the runtime that there is nothing to clean up; that is true, as nothing was
done. On DEL ``CNI_NETNS`` is forwarded unchecked: it is often empty, and a
DEL must succeed after its container is gone. ``CNI_PATH`` is never required:
the spec makes it optional and this plugin delegates to no other plugin.

Agent failures: unreachable, timed out or cut off is code 11 (try again later)
for every command, DEL included, so the runtime retries rather than believing
a teardown that did not happen. A malformed agent answer is code 5, and an
unexpected bug is 999 (libcni's "internal"), so stdout is always a CNI object.
"""

import _json
import _socket
import posix
import sys

__all__ = [
    "DEFAULT_AGENT_SOCKET",
    "SUPPORTED_VERSIONS",
    "CniError",
    "Invocation",
    "check_command_version",
    "check_version",
    "convert_result",
    "dumps",
    "error_json",
    "loads",
    "main",
    "parse_args",
    "parse_command",
    "parse_config",
    "parse_invocation",
    "parse_response",
    "post",
    "render_answer",
    "run",
    "version_answer",
]

# The versions whose results we can print correctly. The agent answers in
# 1.0.0 form. A 1.0.0 result is a valid 1.1.0 result (1.1.0 only added optional
# fields). 0.3.0, 0.3.1 and 0.4.0 share one result format, which differs from
# 1.0.0 only by the required ``ips[].version``; convert_result adds it.
# 0.1.0/0.2.0 results (ip4/ip6 objects) are a different shape: not offered.
# Kept in ascending order: the command floors below compare indexes.
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
DEFAULT_VERSION = "1.0.0"
DEFAULT_AGENT_SOCKET = "/var/run/axoneme/agent.sock"
AGENT_SOCKET_ENV = "AXONEME_AGENT_SOCKET"
# ADD creates links in the kernel; the runtime has its own, longer deadline.
AGENT_TIMEOUT_S = 120.0
# An agent answer larger than this is not a CNI result.
MAX_ANSWER_BYTES = 16 << 20

# CNI spec error codes (plus libcni's 999 for "internal").
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN_LATER = 11
ERR_INTERNAL = 999

# Command -> agent URL path; VERSION never reaches the agent.
AGENT_PATHS = {
    "ADD": "/v1/cni/add",
    "DEL": "/v1/cni/del",
    "CHECK": "/v1/cni/check",
    "GC": "/v1/cni/gc",
    "STATUS": "/v1/cni/status",
}
_REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "GC": (),
    "STATUS": (),
}
# The first spec version that has the command (as libcni's skel enforces).
_VERSION_FLOOR = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}
_VALID_ATTACHMENTS = "cni.dev/valid-attachments"
_JSON_WS = " \t\n\r"
_IFNAMSIZ = 16  # kernel limit including the NUL: names are 1..15 bytes


class CniError(Exception):
    """A CNI spec error: printed as ``{"cniVersion", "code", "msg", "details"}``, exit 1."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details


class Invocation:
    """A call that passed every check: where to send it, what, and how to shape the answer."""

    __slots__ = ("cni_version", "command", "request", "socket_path")

    def __init__(
        self, command: str, cni_version: str, socket_path: str, request: dict[str, object]
    ) -> None:
        self.command = command
        self.cni_version = cni_version
        self.socket_path = socket_path
        # The body of POST /v1/cni/<command>, as the agent API describes it.
        self.request = request


# --- JSON through the C accelerator only ------------------------------------------------


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf - inf is nan: 1e999 would not encode back as JSON
        raise ValueError(f"number {text} is out of range")
    return value


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads: strict JSON, no NaN or Infinity.

    Set on the instance, not the class, so the hooks stay plain functions.
    """

    def __init__(self) -> None:
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_int = int
        self.parse_float = _parse_float
        self.parse_constant = _reject_constant


def _unencodable(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# typeshed types the context as a scanner; the C code only reads the attributes above.
_SCAN = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]
_ENCODE = _json.make_encoder(
    None, _unencodable, _json.encode_basestring_ascii, None, ":", ",", False, False, False
)


def loads(text: str) -> object:
    """Decode one JSON document (surrounding whitespace allowed); raise ValueError."""
    start = len(text) - len(text.lstrip(_JSON_WS))
    try:
        try:
            value, end = _SCAN(text, start)
        except SystemError:
            # CPython 3.11's scanner builds its error from json.decoder, which it looks
            # up but does not import: load it (error path only) and scan again.
            import json.decoder  # noqa: F401

            value, end = _SCAN(text, start)
    except StopIteration as exc:
        raise ValueError(f"expecting a JSON value at char {exc.value}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if text[end:].strip(_JSON_WS):
        raise ValueError(f"extra data after the JSON value at char {end}")
    return value


def dumps(value: object) -> str:
    """Encode compactly, ASCII only; raise TypeError or ValueError on non-JSON values."""
    return "".join(_ENCODE(value, 0))


# --- checks -----------------------------------------------------------------------------


def _getenv(environ: dict[bytes, bytes], name: str) -> str:
    raw = environ.get(name.encode(), b"")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CniError(ERR_INVALID_ENV, f"{name} is not valid UTF-8", repr(raw)) from None


def _is_identifier(value: str) -> bool:
    """libcni's rule for container ids and network names: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``."""
    return (
        value.isascii() and value[:1].isalnum() and all(ch.isalnum() or ch in "_.-" for ch in value)
    )


def _check_ifname(name: str) -> None:
    # The kernel's dev_valid_name(), as libcni's ValidateInterfaceName applies it.
    problem = ""
    if len(name.encode()) >= _IFNAMSIZ:
        problem = f"longer than {_IFNAMSIZ - 1} bytes"
    elif name in (".", ".."):
        problem = "'.' and '..' are not interface names"
    elif any(ch in "/:" or ch.isspace() for ch in name):
        problem = "contains '/', ':' or whitespace"
    if problem:
        raise CniError(ERR_INVALID_ENV, f"CNI_IFNAME {name!r} is invalid: {problem}", name)


def parse_args(raw: str) -> dict[str, str]:
    """Split ``CNI_ARGS`` (``K=V;K=V``) as libcni does: each pair has one ``=`` and a key."""
    args: dict[str, str] = {}
    if not raw:
        return args
    for pair in raw.split(";"):
        key, sep, value = pair.partition("=")
        if not sep or not key or "=" in value:
            raise CniError(
                ERR_INVALID_ENV,
                f"CNI_ARGS is malformed: {pair!r} is not KEY=VALUE",
                f"CNI_ARGS={raw}",
            )
        args[key] = value
    return args


def parse_command(environ: dict[bytes, bytes]) -> str:
    """Return ``CNI_COMMAND`` if it is a command we know (code 4 if not)."""
    command = _getenv(environ, "CNI_COMMAND")
    if not command:
        raise CniError(ERR_INVALID_ENV, "required env variables [CNI_COMMAND] missing")
    if command != "VERSION" and command not in AGENT_PATHS:
        raise CniError(
            ERR_INVALID_ENV,
            f"unknown CNI_COMMAND: {command}",
            "CNI_COMMAND must be one of ADD, DEL, CHECK, GC, STATUS, VERSION",
        )
    return command


def parse_config(stdin: bytes) -> dict[str, object]:
    """Decode the network configuration on stdin: a JSON object (code 6 if not)."""
    try:
        config = loads(stdin.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CniError(ERR_DECODE, "network config on stdin is not UTF-8", str(exc)) from None
    except ValueError as exc:
        raise CniError(ERR_DECODE, "network config on stdin is not valid JSON", str(exc)) from None
    if not isinstance(config, dict):
        raise CniError(
            ERR_DECODE,
            "network config on stdin must be a JSON object",
            f"got a JSON {type(config).__name__}",
        )
    return config


def check_version(config: dict[str, object]) -> str:
    """Return ``cniVersion`` if it is one we support (code 1 if not)."""
    version = config.get("cniVersion")
    if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
        shown = "missing" if version is None else dumps(version)
        raise CniError(
            ERR_INCOMPATIBLE_VERSION,
            f"incompatible CNI versions: config cniVersion is {shown}",
            "plugin supports " + ", ".join(SUPPORTED_VERSIONS),
        )
    return version


def check_command_version(command: str, version: str) -> None:
    """Refuse a command that ``version`` does not have (code 1), as libcni's skel does."""
    floor = _VERSION_FLOOR.get(command)
    if floor is not None and SUPPORTED_VERSIONS.index(version) < SUPPORTED_VERSIONS.index(floor):
        raise CniError(
            ERR_INCOMPATIBLE_VERSION,
            f"config version does not allow {command}",
            f"cniVersion {version}; {command} needs {floor} or later",
        )


def _config_string(config: dict[str, object], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value:
        raise CniError(
            ERR_INVALID_CONFIG,
            f"network config field {key!r} must be a non-empty string",
            f"{key}: " + ("missing" if value is None else dumps(value)),
        )
    return value


def _check_attachments(config: dict[str, object]) -> None:
    # GC deletes every attachment missing from this list, so a missing or garbled
    # list must fail here rather than read as "nothing is valid".
    attachments = config.get(_VALID_ATTACHMENTS)
    if not isinstance(attachments, list):
        raise CniError(
            ERR_INVALID_CONFIG,
            f"network config field {_VALID_ATTACHMENTS!r} must be a list for GC",
            f"{_VALID_ATTACHMENTS}: " + ("missing" if attachments is None else dumps(attachments)),
        )
    for index, item in enumerate(attachments):
        for key in ("containerID", "ifname"):
            if not isinstance(item, dict) or not isinstance(item.get(key), str):
                raise CniError(
                    ERR_INVALID_CONFIG,
                    f"network config field '{_VALID_ATTACHMENTS}[{index}].{key}' must be a string",
                    dumps(item),
                )


def _socket_path(config: dict[str, object], environ: dict[bytes, bytes]) -> str:
    if "agentSocket" in config:
        return _config_string(config, "agentSocket")
    return _getenv(environ, AGENT_SOCKET_ENV) or DEFAULT_AGENT_SOCKET


def parse_invocation(
    environ: dict[bytes, bytes], command: str, config: dict[str, object], version: str
) -> Invocation:
    """Checks 6-10 of the module docstring, once the command and version are known good."""
    required = _REQUIRED_ENV[command]
    values = {
        name: _getenv(environ, name) for name in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME")
    }
    missing = [name for name in required if not values[name]]
    if missing:
        raise CniError(ERR_INVALID_ENV, f"required env variables [{','.join(missing)}] missing")
    # GC and STATUS concern no container: whatever the runtime left in these is not sent.
    container_id = values["CNI_CONTAINERID"] if "CNI_CONTAINERID" in required else ""
    netns = values["CNI_NETNS"] if command != "GC" and command != "STATUS" else ""
    ifname = values["CNI_IFNAME"] if "CNI_IFNAME" in required else ""
    if "CNI_CONTAINERID" in required and not _is_identifier(container_id):
        raise CniError(
            ERR_INVALID_ENV,
            "CNI_CONTAINERID has invalid characters: it must match [a-zA-Z0-9][a-zA-Z0-9_.-]*",
            container_id,
        )
    if "CNI_IFNAME" in required:
        _check_ifname(ifname)
    if "CNI_NETNS" in required and not netns.startswith("/"):
        raise CniError(ERR_INVALID_ENV, "CNI_NETNS must be an absolute path", netns)
    args = parse_args(_getenv(environ, "CNI_ARGS"))

    name = _config_string(config, "name")
    if not _is_identifier(name):
        raise CniError(
            ERR_INVALID_CONFIG,
            "network config field 'name' must match [a-zA-Z0-9][a-zA-Z0-9_.-]*",
            f"name: {name}",
        )
    _config_string(config, "type")
    socket_path = _socket_path(config, environ)
    if "prevResult" in config and not isinstance(config["prevResult"], dict):
        raise CniError(
            ERR_INVALID_CONFIG,
            "network config field 'prevResult' must be an object",
            dumps(config["prevResult"]),
        )
    if command == "GC":
        _check_attachments(config)

    if "CNI_NETNS" in required:
        try:
            posix.stat(netns)
        except (FileNotFoundError, NotADirectoryError):
            raise CniError(
                ERR_UNKNOWN_CONTAINER, f"CNI_NETNS {netns} does not exist", netns
            ) from None
        except OSError as exc:
            raise CniError(ERR_IO, f"cannot stat CNI_NETNS {netns}", str(exc)) from None

    request: dict[str, object] = {
        "command": command,
        "containerId": container_id,
        "netns": netns,
        "ifname": ifname,
        "args": args,
        "config": config,
    }
    return Invocation(command, version, socket_path, request)


def version_answer(stdin: bytes) -> str:
    """The VERSION reply. Its ``cniVersion`` echoes the input's, as the spec asks, if we
    support it; the input is otherwise ignored (runtimes send ``{"cniVersion": ...}``)."""
    version = DEFAULT_VERSION
    if stdin.strip():
        try:
            probe = loads(stdin.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is a ValueError too
            probe = None
        if isinstance(probe, dict) and probe.get("cniVersion") in SUPPORTED_VERSIONS:
            version = str(probe["cniVersion"])
    return dumps({"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)})


# --- the agent's answer ----------------------------------------------------------------


def convert_result(result: dict[str, object], version: str) -> dict[str, object]:
    """Label the agent's 1.0.0 result with the caller's version, converting for 0.x."""
    converted: dict[str, object] = {"cniVersion": version}
    converted.update((k, v) for k, v in result.items() if k != "cniVersion")
    ips = converted.get("ips")
    if version.startswith("0.") and isinstance(ips, list):
        # 0.3.x/0.4.0 require ips[].version; 1.0.0 dropped it as redundant.
        converted["ips"] = [
            {"version": "6" if ":" in str(ip.get("address", "")) else "4", **ip}
            if isinstance(ip, dict)
            else ip
            for ip in ips
        ]
    return converted


def render_answer(invocation: Invocation, status: int, body: bytes) -> str:
    """Turn the agent's HTTP answer into the plugin's stdout, or raise its CniError.

    Only ADD prints a result; DEL, CHECK, GC and STATUS print nothing on success.
    """
    try:
        answer = loads(body.decode("utf-8"))
    except ValueError:
        answer = None
    if status == 200:
        if invocation.command != "ADD":
            return ""
        if not isinstance(answer, dict):
            raise CniError(
                ERR_IO, "agent answered ADD with a result that is not a JSON object", _clip(body)
            )
        return dumps(convert_result(answer, invocation.cni_version))
    # Any other status carries a CNI error object (agent-api.md), code included.
    if not isinstance(answer, dict):
        answer = {}
    code = answer.get("code")
    if not isinstance(code, int) or isinstance(code, bool) or code < 1:
        raise CniError(ERR_IO, f"agent answered HTTP {status} without a CNI error", _clip(body))
    msg = answer.get("msg")
    details = answer.get("details")
    raise CniError(
        code,
        msg if isinstance(msg, str) else f"agent answered HTTP {status}",
        details if isinstance(details, str) else "",
    )


def _clip(body: bytes) -> str:
    return body[:300].decode("utf-8", "replace")


# --- HTTP/1.1 over the agent's unix socket ----------------------------------------------


def _retry_later(socket_path: str, what: str, exc: object) -> CniError:
    return CniError(ERR_TRY_AGAIN_LATER, f"axoneme agent {what}", f"{socket_path}: {exc}")


def post(
    socket_path: str, path: str, body: bytes, timeout: float = AGENT_TIMEOUT_S
) -> tuple[int, bytes]:
    """POST ``body`` to the agent and return (HTTP status, response body).

    Unreachable, timed out or cut off is code 11; an answer that is not HTTP is code 5.
    """
    head = (
        f"POST {path} HTTP/1.1\r\nHost: axoneme-agent\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
        except (FileNotFoundError, ConnectionRefusedError, BlockingIOError, TimeoutError) as exc:
            # No socket yet, nobody listening, backlog full, or a hung agent: all pass.
            raise _retry_later(socket_path, "is not reachable", exc) from None
        except OSError as exc:
            raise CniError(
                ERR_IO, "cannot connect to the axoneme agent", f"{socket_path}: {exc}"
            ) from None
        chunks: list[bytes] = []
        size = 0
        try:
            sock.sendall(head + body)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise CniError(ERR_IO, "agent answer is too large", f"over {size} bytes")
        except OSError as exc:  # reset, broken pipe, TimeoutError
            raise _retry_later(socket_path, "connection failed", exc) from None
    finally:
        sock.close()
    return parse_response(b"".join(chunks), socket_path)


def parse_response(raw: bytes, socket_path: str = "") -> tuple[int, bytes]:
    """Parse a whole HTTP/1.x response read to EOF: (status, body)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise _retry_later(socket_path, "closed the connection before answering", f"{len(raw)} B")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise CniError(ERR_IO, "agent answer is not HTTP", _clip(lines[0]))
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        body = _dechunk(body, socket_path)
    elif b"content-length" in headers:
        try:
            length = int(headers[b"content-length"])
        except ValueError:
            raise CniError(ERR_IO, "agent answer has a bad Content-Length", "") from None
        if len(body) < length:
            raise _retry_later(socket_path, "answer was cut off", f"{len(body)} of {length} B")
        body = body[:length]
    return int(parts[1]), body


def _dechunk(data: bytes, socket_path: str) -> bytes:
    out: list[bytes] = []
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            raise _retry_later(socket_path, "answer was cut off", "in a chunk header")
        try:
            size = int(data[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            raise CniError(ERR_IO, "agent answer has a bad chunk header", "") from None
        if size == 0:
            return b"".join(out)
        start = eol + 2
        if len(data) < start + size + 2:
            raise _retry_later(socket_path, "answer was cut off", "in a chunk")
        out.append(data[start : start + size])
        pos = start + size + 2


# --- entry points -----------------------------------------------------------------------


def error_json(version: str, err: CniError) -> str:
    """The spec's error object."""
    return dumps({"cniVersion": version, "code": err.code, "msg": err.msg, "details": err.details})


def run(environ: dict[bytes, bytes], stdin: bytes) -> tuple[int, str]:
    """One invocation: (exit status, stdout text). I/O is the agent round trip only."""
    # Errors carry the caller's cniVersion from the moment it is known to be supported.
    version = DEFAULT_VERSION
    try:
        command = parse_command(environ)
        if command == "VERSION":
            return 0, version_answer(stdin)
        config = parse_config(stdin)
        version = check_version(config)
        check_command_version(command, version)
        invocation = parse_invocation(environ, command, config, version)
        body = dumps(invocation.request).encode("ascii")
        status, answer = post(invocation.socket_path, AGENT_PATHS[invocation.command], body)
        return 0, render_answer(invocation, status, answer)
    except CniError as err:
        return 1, error_json(version, err)


def _read_stdin() -> bytes:
    try:
        return sys.stdin.buffer.read() if sys.stdin is not None else b""
    except OSError as exc:
        raise CniError(ERR_IO, "cannot read the network config on stdin", str(exc)) from None


def main() -> int:
    """The plugin process: read stdin and the CNI_* variables, print the answer, exit."""
    try:
        status, text = run(posix.environ, _read_stdin())
    except CniError as err:  # stdin unreadable
        status, text = 1, error_json(DEFAULT_VERSION, err)
    except Exception as exc:  # a bug: still answer with a CNI error object
        bug = CniError(ERR_INTERNAL, "axoneme-cni internal error", f"{type(exc).__name__}: {exc}")
        status, text = 1, error_json(DEFAULT_VERSION, bug)
    if text:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
