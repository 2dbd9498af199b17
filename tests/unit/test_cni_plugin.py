"""axoneme.cni.plugin, exec'ed as a runtime does it, against a fake agent.

Every test runs the launcher from ``axoneme.cni.install`` as a subprocess with a
minimal environment (``PATH`` plus ``CNI_*``) and the network config on stdin.
The fake agent is an HTTP server on a unix socket that records each request and
returns a canned answer. A rejected call must leave it with no request at all.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from axoneme.cni import install, plugin

SRC_ROOT = Path(__file__).resolve().parents[2] / "src"
# The interpreter the launcher names, as installed on a node; the venv's as a fallback.
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").is_file() else sys.executable
RUNTIME_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

RESULT_100 = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "lxc1a2b3c4d5e6", "mac": "02:00:00:00:00:01"},
        {"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": "/proc/1234/ns/net"},
    ],
    "ips": [
        {"interface": 1, "address": "10.42.1.5/24", "gateway": "10.42.1.1"},
        {"interface": 1, "address": "fd00:42:1::5/64", "gateway": "fd00:42:1::1"},
    ],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.42.1.1"}],
    "dns": {},
}


# --- the fake agent ---------------------------------------------------------------------


@dataclass
class Request:
    """One HTTP request the fake agent received."""

    method: str
    path: str
    headers: dict[str, str]
    body: object


@dataclass
class FakeAgent:
    """Records requests; answers each path with a canned (status, body), else 200 ``{}``."""

    socket_path: str
    requests: list[Request] = field(default_factory=list)
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    def answer(self, path: str, status: int, body: object) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[path] = (status, raw)


class _AgentServer(socketserver.ThreadingUnixStreamServer):
    agent: FakeAgent


class _AgentHandler(socketserver.StreamRequestHandler):
    server: _AgentServer

    def handle(self) -> None:
        method, path, _ = self.rfile.readline().decode("ascii").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("ascii").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = json.loads(self.rfile.read(int(headers.get("content-length", "0"))))
        agent = self.server.agent
        agent.requests.append(Request(method, path, headers, body))
        status, payload = agent.answers.get(path, (200, b"{}"))
        self.wfile.write(
            f"HTTP/1.1 {status} Canned\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode("ascii")
            + payload
        )


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory: unix socket paths must fit in 108 bytes, tmp_path may not."""
    with tempfile.TemporaryDirectory(prefix="axocni-") as tmp:
        yield Path(tmp)


@pytest.fixture
def agent(short_dir: Path) -> Iterator[FakeAgent]:
    path = str(short_dir / "agent.sock")
    server = _AgentServer(path, _AgentHandler)
    server.agent = FakeAgent(path)
    # A short poll interval: shutdown() waits for it, once per test.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="fake-agent", daemon=True
    )
    thread.start()
    try:
        yield server.agent
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- running the plugin like a runtime --------------------------------------------------


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("cnibin") / "axoneme-cni"
    install.write_launcher(dest, SRC_ROOT, python=PYTHON)
    return dest


@pytest.fixture
def netns(tmp_path: Path) -> str:
    """A path that exists, standing in for /proc/<pid>/ns/net (the plugin only stats it)."""
    path = tmp_path / "netns"
    path.touch()
    return str(path)


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    @property
    def answer(self) -> dict[str, object]:
        value = json.loads(self.stdout)
        assert isinstance(value, dict)
        return value


def cni(
    launcher: Path,
    command: str | None,
    stdin: object,
    netns: str = "",
    **env: str | None,
) -> Outcome:
    """Exec the plugin as a runtime does. ``env`` overrides the CNI_* defaults; None unsets."""
    base: dict[str, str | None] = {
        "PATH": RUNTIME_PATH,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "default-c1",
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "",
        "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
    }
    base.update(env)
    environ = {key: value for key, value in base.items() if value is not None}
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    proc = subprocess.run(
        [str(launcher)], input=data, env=environ, capture_output=True, timeout=60, check=False
    )
    return Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def config_for(agent: FakeAgent, **fields: object) -> dict[str, object]:
    config: dict[str, object] = {
        "cniVersion": "1.0.0",
        "name": "axonet",
        "type": "axoneme-cni",
        "agentSocket": agent.socket_path,
        "someOption": 42,
    }
    config.update(fields)
    return config


def assert_rejected(outcome: Outcome, code: int, names: str, agent: FakeAgent) -> None:
    """A spec error naming ``names``, exit 1, nothing on stderr, and no call to the agent."""
    assert outcome.returncode == 1, outcome
    answer = outcome.answer
    assert list(answer) == ["cniVersion", "code", "msg", "details"]
    assert answer["code"] == code, answer
    assert names in f"{answer['msg']} {answer['details']}", answer
    assert outcome.stderr == ""
    assert agent.requests == []


# --- VERSION ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdin", "echoed"),
    [
        ({"cniVersion": "1.0.0"}, "1.0.0"),
        ({"cniVersion": "0.4.0"}, "0.4.0"),
        ({"cniVersion": "1.1.0"}, "1.1.0"),
        ({"cniVersion": "9.9.9"}, "1.0.0"),
        (b"", "1.0.0"),
        (b"not json", "1.0.0"),
    ],
)
def test_version_is_answered_locally(
    launcher: Path, agent: FakeAgent, stdin: object, echoed: str
) -> None:
    outcome = cni(launcher, "VERSION", stdin, CNI_CONTAINERID=None, CNI_IFNAME=None)
    assert outcome.returncode == 0, outcome
    assert outcome.answer == {
        "cniVersion": echoed,
        "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }
    assert agent.requests == []


# --- forwarding -------------------------------------------------------------------------


def test_add_forwards_the_whole_call_and_prints_the_result(
    launcher: Path, agent: FakeAgent, netns: str
) -> None:
    agent.answer("/v1/cni/add", 200, RESULT_100)
    config = config_for(agent, runtimeConfig={"portMappings": []})
    outcome = cni(
        launcher,
        "ADD",
        config,
        netns,
        CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web;K8S_POD_UID=",
    )
    assert outcome.returncode == 0, outcome
    assert outcome.stderr == ""
    assert outcome.answer == RESULT_100
    [request] = agent.requests
    assert (request.method, request.path) == ("POST", "/v1/cni/add")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["connection"] == "close"
    assert request.body == {
        "command": "ADD",
        "containerId": "default-c1",
        "netns": netns,
        "ifname": "eth0",
        "args": {
            "IgnoreUnknown": "1",
            "K8S_POD_NAMESPACE": "demo",
            "K8S_POD_NAME": "web",
            "K8S_POD_UID": "",
        },
        "config": config,
    }


def test_add_result_carries_the_config_version(
    launcher: Path, agent: FakeAgent, netns: str
) -> None:
    agent.answer("/v1/cni/add", 200, RESULT_100)
    outcome = cni(launcher, "ADD", config_for(agent, cniVersion="1.1.0"), netns)
    assert outcome.returncode == 0, outcome
    assert outcome.answer == {**RESULT_100, "cniVersion": "1.1.0"}
    assert next(iter(outcome.answer)) == "cniVersion"


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_add_result_is_converted_for_0x_configs(
    launcher: Path, agent: FakeAgent, netns: str, version: str
) -> None:
    agent.answer("/v1/cni/add", 200, RESULT_100)
    outcome = cni(launcher, "ADD", config_for(agent, cniVersion=version), netns)
    assert outcome.returncode == 0, outcome
    answer = outcome.answer
    assert answer["cniVersion"] == version
    ips = answer["ips"]
    assert isinstance(ips, list)
    assert [ip["version"] for ip in ips] == ["4", "6"]
    assert answer["interfaces"] == RESULT_100["interfaces"]


def test_chained_add_forwards_prev_result(launcher: Path, agent: FakeAgent, netns: str) -> None:
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}], "ips": []}
    agent.answer("/v1/cni/add", 200, RESULT_100)
    outcome = cni(launcher, "ADD", config_for(agent, prevResult=prev), netns)
    assert outcome.returncode == 0, outcome
    [request] = agent.requests
    assert isinstance(request.body, dict)
    assert request.body["config"]["prevResult"] == prev


def test_del_without_netns_is_forwarded_and_prints_nothing(
    launcher: Path, agent: FakeAgent
) -> None:
    config = config_for(agent, prevResult=RESULT_100)
    outcome = cni(launcher, "DEL", config, "")
    assert (outcome.returncode, outcome.stdout, outcome.stderr) == (0, "", "")
    [request] = agent.requests
    assert request.path == "/v1/cni/del"
    assert request.body == {
        "command": "DEL",
        "containerId": "default-c1",
        "netns": "",
        "ifname": "eth0",
        "args": {},
        "config": config,
    }


def test_del_does_not_need_the_netns_to_exist(launcher: Path, agent: FakeAgent) -> None:
    outcome = cni(launcher, "DEL", config_for(agent), "/proc/999999999/ns/net")
    assert (outcome.returncode, outcome.stdout) == (0, "")
    assert [r.path for r in agent.requests] == ["/v1/cni/del"]


@pytest.mark.parametrize(
    ("command", "version", "extra"),
    [
        ("CHECK", "1.0.0", {"prevResult": RESULT_100}),
        ("CHECK", "0.4.0", {}),
        (
            "GC",
            "1.1.0",
            {"cni.dev/valid-attachments": [{"containerID": "default-c1", "ifname": "eth0"}]},
        ),
        ("STATUS", "1.1.0", {}),
    ],
)
def test_other_commands_are_forwarded_and_print_nothing(
    launcher: Path,
    agent: FakeAgent,
    netns: str,
    command: str,
    version: str,
    extra: dict[str, object],
) -> None:
    env: dict[str, str | None] = {}
    if command in ("GC", "STATUS"):  # no container: stray values are neither checked nor sent
        env = {"CNI_CONTAINERID": "stray id!", "CNI_IFNAME": None, "CNI_NETNS": None}
    config = config_for(agent, cniVersion=version, **extra)
    outcome = cni(launcher, command, config, netns, **env)
    assert (outcome.returncode, outcome.stdout, outcome.stderr) == (0, "", "")
    [request] = agent.requests
    assert request.path == f"/v1/cni/{command.lower()}"
    assert isinstance(request.body, dict)
    assert request.body["command"] == command
    assert request.body["config"] == config
    if command in ("GC", "STATUS"):
        assert (request.body["containerId"], request.body["netns"]) == ("", "")


def test_socket_path_falls_back_to_the_environment(
    launcher: Path, agent: FakeAgent, netns: str
) -> None:
    config = config_for(agent)
    del config["agentSocket"]
    outcome = cni(launcher, "DEL", config, netns, AXONEME_AGENT_SOCKET=agent.socket_path)
    assert outcome.returncode == 0, outcome
    assert len(agent.requests) == 1


# --- agent answers and failures ---------------------------------------------------------


@pytest.mark.parametrize("status", [400, 409, 500, 503])
def test_agent_error_is_passed_through(
    launcher: Path, agent: FakeAgent, netns: str, status: int
) -> None:
    agent.answer(
        "/v1/cni/add",
        status,
        {"code": 101, "msg": "IPAM pool exhausted", "details": "10.42.1.0/24"},
    )
    outcome = cni(launcher, "ADD", config_for(agent, cniVersion="0.4.0"), netns)
    assert outcome.returncode == 1
    assert outcome.answer == {
        "cniVersion": "0.4.0",
        "code": 101,
        "msg": "IPAM pool exhausted",
        "details": "10.42.1.0/24",
    }


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b"not json"), (200, b"[1]"), (500, b"Internal Server Error"), (404, b"{}")],
)
def test_malformed_agent_answer_is_an_io_error(
    launcher: Path, agent: FakeAgent, netns: str, status: int, body: bytes
) -> None:
    agent.answer("/v1/cni/add", status, body)
    outcome = cni(launcher, "ADD", config_for(agent), netns)
    assert outcome.returncode == 1
    assert outcome.answer["code"] == plugin.ERR_IO
    assert len(agent.requests) == 1


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
@pytest.mark.parametrize("kind", ["no-socket-file", "nobody-listening"])
def test_agent_not_running_is_try_again_later(
    launcher: Path, short_dir: Path, netns: str, command: str, kind: str
) -> None:
    path = str(short_dir / "dead.sock")
    if kind == "nobody-listening":  # a stale socket file left by a dead agent
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(path)
    config = {"cniVersion": "1.0.0", "name": "axonet", "type": "axoneme-cni", "agentSocket": path}
    outcome = cni(launcher, command, config, netns)
    assert outcome.returncode == 1
    answer = outcome.answer
    assert answer["code"] == 11
    assert path in str(answer["details"])


# --- bad input: rejected before the agent is asked --------------------------------------


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        ("ADD", "CNI_CONTAINERID"),
        ("ADD", "CNI_NETNS"),
        ("ADD", "CNI_IFNAME"),
        ("CHECK", "CNI_CONTAINERID"),
        ("CHECK", "CNI_NETNS"),
        ("CHECK", "CNI_IFNAME"),
        ("DEL", "CNI_CONTAINERID"),
        ("DEL", "CNI_IFNAME"),
    ],
)
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_missing_required_variable(
    launcher: Path, agent: FakeAgent, netns: str, command: str, variable: str, how: str
) -> None:
    value = None if how == "unset" else ""
    outcome = cni(launcher, command, config_for(agent), netns, **{variable: value})
    assert_rejected(outcome, 4, variable, agent)


@pytest.mark.parametrize("value", [None, "", "ATTACH", "add"])
def test_bad_command(launcher: Path, agent: FakeAgent, netns: str, value: str | None) -> None:
    outcome = cni(launcher, value, config_for(agent), netns)
    assert_rejected(outcome, 4, "CNI_COMMAND", agent)


@pytest.mark.parametrize(
    "stdin",
    [b"", b"   ", b'{"cniVersion": "1.0.0",', b"{} {}", b"\xff\xfe{}", b'{"a": NaN}', b"[1"],
)
def test_undecodable_stdin(launcher: Path, agent: FakeAgent, netns: str, stdin: bytes) -> None:
    assert_rejected(cni(launcher, "ADD", stdin, netns), 6, "stdin", agent)


@pytest.mark.parametrize("stdin", [[], "x", 1, None, True])
def test_stdin_must_be_an_object(
    launcher: Path, agent: FakeAgent, netns: str, stdin: object
) -> None:
    assert_rejected(cni(launcher, "ADD", stdin, netns), 6, "JSON object", agent)


@pytest.mark.parametrize("version", [None, "0.1.0", "0.2.0", "2.0.0", "", 1, ["1.0.0"]])
def test_unsupported_cni_version(
    launcher: Path, agent: FakeAgent, netns: str, version: object
) -> None:
    config = config_for(agent, cniVersion=version)
    if version is None:
        del config["cniVersion"]
    assert_rejected(cni(launcher, "ADD", config, netns), 1, "cniVersion", agent)


@pytest.mark.parametrize(
    ("command", "version"), [("CHECK", "0.3.1"), ("GC", "1.0.0"), ("STATUS", "0.4.0")]
)
def test_command_newer_than_the_config_version(
    launcher: Path, agent: FakeAgent, netns: str, command: str, version: str
) -> None:
    outcome = cni(launcher, command, config_for(agent, cniVersion=version), netns)
    assert_rejected(outcome, 1, command, agent)
    assert outcome.answer["cniVersion"] == version


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", None),
        ("name", ""),
        ("name", 7),
        ("name", "bad name"),
        ("name", "-net"),
        ("type", None),
        ("type", ""),
        ("type", ["axoneme-cni"]),
        ("agentSocket", 5),
        ("agentSocket", ""),
        ("prevResult", "eth0"),
    ],
)
def test_invalid_network_config_field(
    launcher: Path, agent: FakeAgent, netns: str, key: str, value: object
) -> None:
    config = config_for(agent, **{key: value})
    if value is None:
        del config[key]
    assert_rejected(cni(launcher, "ADD", config, netns), 7, key, agent)


@pytest.mark.parametrize(
    ("attachments", "named"),
    [
        (None, "cni.dev/valid-attachments"),
        ({}, "cni.dev/valid-attachments"),
        ([{"containerID": "c1"}], "cni.dev/valid-attachments[0].ifname"),
        (["c1"], "cni.dev/valid-attachments[0].containerID"),
    ],
)
def test_gc_needs_the_valid_attachments(
    launcher: Path, agent: FakeAgent, attachments: object, named: str
) -> None:
    config = config_for(agent, cniVersion="1.1.0")
    if attachments is not None:
        config["cni.dev/valid-attachments"] = attachments
    outcome = cni(launcher, "GC", config, CNI_CONTAINERID=None, CNI_IFNAME=None)
    assert_rejected(outcome, 7, named, agent)


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_netns_that_does_not_exist(
    launcher: Path, agent: FakeAgent, tmp_path: Path, command: str
) -> None:
    missing = str(tmp_path / "gone" / "net")
    outcome = cni(launcher, command, config_for(agent), missing)
    assert_rejected(outcome, 3, "CNI_NETNS", agent)
    assert missing in str(outcome.answer["details"])


def test_netns_must_be_absolute(launcher: Path, agent: FakeAgent) -> None:
    assert_rejected(cni(launcher, "ADD", config_for(agent), "proc/1/ns/net"), 4, "CNI_NETNS", agent)


@pytest.mark.parametrize(
    "args", ["K8S_POD_NAME", "=web", "A=1;;B=2", "A=1;", "A=b=c", "K8S_POD_NAME web"]
)
@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_malformed_cni_args(
    launcher: Path, agent: FakeAgent, netns: str, command: str, args: str
) -> None:
    outcome = cni(launcher, command, config_for(agent), netns, CNI_ARGS=args)
    assert_rejected(outcome, 4, "CNI_ARGS", agent)


@pytest.mark.parametrize(
    "ifname",
    ["eth0123456789abc", "eth/0", "eth 0", "eth\t0", ".", "..", "eth0:1", "ethé0ab9abcdefg"],
)
@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_bad_ifname(
    launcher: Path, agent: FakeAgent, netns: str, command: str, ifname: str
) -> None:
    outcome = cni(launcher, command, config_for(agent), netns, CNI_IFNAME=ifname)
    assert_rejected(outcome, 4, "CNI_IFNAME", agent)


def test_longest_ifname_is_accepted(launcher: Path, agent: FakeAgent, netns: str) -> None:
    outcome = cni(launcher, "ADD", config_for(agent), netns, CNI_IFNAME="eth012345678901")
    assert outcome.returncode == 0, outcome
    assert len(agent.requests) == 1


@pytest.mark.parametrize("container_id", ["-abc", "_abc", "a b", "c/1", "c1;rm", "ü1", "c1\n"])
@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_bad_container_id(
    launcher: Path, agent: FakeAgent, netns: str, command: str, container_id: str
) -> None:
    outcome = cni(launcher, command, config_for(agent), netns, CNI_CONTAINERID=container_id)
    assert_rejected(outcome, 4, "CNI_CONTAINERID", agent)


def test_errors_carry_the_config_version(launcher: Path, agent: FakeAgent, netns: str) -> None:
    outcome = cni(launcher, "ADD", config_for(agent, cniVersion="0.4.0"), netns, CNI_IFNAME=".")
    assert_rejected(outcome, 4, "CNI_IFNAME", agent)
    assert outcome.answer["cniVersion"] == "0.4.0"


# --- start-up cost and the launcher ------------------------------------------------------


def test_add_imports_no_heavy_module(launcher: Path, agent: FakeAgent, netns: str) -> None:
    """The fast path loads only built-in modules: no os, json, socket, typing, re, enum."""
    agent.answer("/v1/cni/add", 200, RESULT_100)
    env = {
        "PATH": RUNTIME_PATH,
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "default-c1",
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
    }
    proc = subprocess.run(
        [PYTHON, "-IS", "-X", "importtime", str(launcher)],
        input=json.dumps(config_for(agent)).encode(),
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.decode().splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert {"axoneme.cni.plugin", "_json", "_socket"} <= imported
    heavy = {"os", "json", "socket", "typing", "re", "enum", "collections", "importlib.metadata"}
    assert imported.isdisjoint(heavy), imported & heavy


def test_launcher_is_an_isolated_absolute_interpreter_script(launcher: Path) -> None:
    text = launcher.read_text()
    assert text.startswith(f"#!{PYTHON} -IS\n")
    assert repr(str(SRC_ROOT)) in text
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o755


@pytest.mark.parametrize("python", ["python3", "/usr/bin/my python3"])
def test_launcher_needs_an_absolute_interpreter(tmp_path: Path, python: str) -> None:
    with pytest.raises(ValueError, match="absolute"):
        install.write_launcher(tmp_path / "cni", SRC_ROOT, python=python)
    assert not (tmp_path / "cni").exists()


def test_launcher_needs_the_package_under_src_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"plugin\.py"):
        install.write_launcher(tmp_path / "cni", tmp_path)


def test_install_cli_writes_a_working_launcher(tmp_path: Path) -> None:
    dest = tmp_path / "bin" / "axoneme-cni"
    subprocess.run(
        [sys.executable, "-m", "axoneme.cni.install", str(dest), "--python", PYTHON],
        check=True,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC_ROOT)},
    )
    outcome = cni(dest, "VERSION", {"cniVersion": "1.0.0"})
    assert outcome.returncode == 0, outcome
    assert outcome.answer["cniVersion"] == "1.0.0"
