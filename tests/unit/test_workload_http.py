"""The workload's sans-io HTTP layer and argument parsing (pure, no root)."""

from __future__ import annotations

import asyncio
import json

import pytest

from axoneme.lab import workload
from axoneme.lab.workload import HttpParseError, PodIdentity, PortSpec

POD = PodIdentity("demo", "web", "n1")


def test_sniff_decides_on_method_prefix() -> None:
    assert workload.looks_like_http(b"GET / HTTP/1.1\r\n") is True
    assert workload.looks_like_http(b"OPTIONS ") is True
    assert workload.looks_like_http(b"") is None
    assert workload.looks_like_http(b"GE") is None
    assert workload.looks_like_http(b"OPTION") is None
    assert workload.looks_like_http(b"GET") is None  # "GET" alone could be an echo payload
    assert workload.looks_like_http(b"hello") is False
    assert workload.looks_like_http(b"get / HTTP/1.1") is False  # methods are case-sensitive
    assert workload.looks_like_http(b"GETX") is False


def test_parse_simple_get() -> None:
    data = b"GET /healthz?x=1 HTTP/1.1\r\nHost: web\r\nX-A: 1\r\n\r\n"
    request = workload.parse_http_request(data)
    assert request is not None
    assert (request.method, request.path, request.version) == ("GET", "/healthz?x=1", "HTTP/1.1")
    assert request.headers == (("Host", "web"), ("X-A", "1"))
    assert request.header("host") == "web"
    assert request.consumed == len(data)
    assert request.keep_alive


@pytest.mark.parametrize("cut", [1, 10, 30, 39, 43])
def test_parse_needs_more_bytes(cut: int) -> None:
    data = b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    assert workload.parse_http_request(data[:cut]) is None
    request = workload.parse_http_request(data + b"GET / HTTP/1.1\r\n")
    assert request is not None
    assert request.body == b"hello"
    assert request.consumed == len(data)  # the pipelined request stays in the buffer


@pytest.mark.parametrize(
    ("version", "connection", "keep"),
    [
        ("HTTP/1.1", None, True),
        ("HTTP/1.1", "close", False),
        ("HTTP/1.1", "Keep-Alive, Close", False),
        ("HTTP/1.0", None, False),
        ("HTTP/1.0", "keep-alive", True),
    ],
)
def test_keep_alive_rules(version: str, connection: str | None, keep: bool) -> None:
    extra = f"Connection: {connection}\r\n" if connection else ""
    request = workload.parse_http_request(f"GET / {version}\r\n{extra}\r\n".encode())
    assert request is not None
    assert request.keep_alive is keep


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET /\r\n\r\n", "bad request line"),
        (b"BREW / HTTP/1.1\r\n\r\n", "unsupported method"),
        (b"GET / HTTP/2.0\r\n\r\n", "unsupported version"),
        (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", "bad header line"),
        (b"GET / HTTP/1.1\r\nBad : x\r\n\r\n", "bad header line"),
        (b"GET / HTTP/1.1\r\nContent-Length: -3\r\n\r\n", "bad Content-Length"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding"),
        (b"GET /" + b"a" * (workload.MAX_HEAD + 1), "request head exceeds"),
    ],
)
def test_parse_rejects_garbage(data: bytes, message: str) -> None:
    with pytest.raises(HttpParseError, match=message):
        workload.parse_http_request(data)


def _split(response: bytes) -> tuple[list[str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return head.decode().split("\r\n"), body


def test_render_response_describes_pod_and_request() -> None:
    request = workload.parse_http_request(
        b"GET /p HTTP/1.1\r\nHost: web\r\nX-Tag: a\r\nX-Tag: b\r\nConnection: close\r\n\r\n"
    )
    assert request is not None
    lines, body = _split(workload.render_response(POD, request, "10.0.0.1:4242"))
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Content-Type: application/json" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert "Connection: close" in lines
    assert json.loads(body) == {
        "pod": "demo/web",
        "namespace": "demo",
        "name": "web",
        "node": "n1",
        "method": "GET",
        "path": "/p",
        "headers": {"Host": "web", "X-Tag": "a, b", "Connection": "close"},
        "client": "10.0.0.1:4242",
    }


def test_head_has_length_but_no_body() -> None:
    request = workload.parse_http_request(b"HEAD / HTTP/1.1\r\n\r\n")
    assert request is not None
    lines, body = _split(workload.render_response(POD, request, "1.2.3.4:5"))
    assert body == b""
    length = next(line for line in lines if line.startswith("Content-Length: "))
    assert int(length.split()[1]) > 0


def test_render_error_closes() -> None:
    lines, body = _split(workload.render_error("bad request line"))
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert "Connection: close" in lines
    assert json.loads(body) == {"error": "bad request line"}


def test_parse_args() -> None:
    ports = ["--port", "80/TCP", "--port", "53/udp", "--port", "80/tcp"]
    options = workload.parse_args(["--namespace", "demo", "--pod", "web", "--node", "n1", *ports])
    assert options.pod == POD
    assert options.ports == (PortSpec(80, "TCP"), PortSpec(53, "UDP"))


@pytest.mark.parametrize("port", ["70000/TCP", "0/UDP", "80", "80/ICMP", "x/TCP", "/TCP"])
def test_bad_port_exits_2_naming_argument(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        workload.main(["--namespace", "d", "--pod", "p", "--node", "n", "--port", port])
    assert exited.value.code == 2
    assert "argument --port" in capsys.readouterr().err


def test_no_port_means_an_idle_pod() -> None:
    # A pod that declares no ports still runs (it only idles), as a container would.
    options = workload.parse_args(["--namespace", "d", "--pod", "p", "--node", "n"])
    assert options.ports == ()


def test_a_silent_client_is_waited_for_not_turned_into_an_empty_echo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client may connect long before it speaks (a test that changes policy
    between connect and request): the server must still see its request."""
    monkeypatch.setattr(workload, "SNIFF_TIMEOUT", 0.02)

    async def run() -> tuple[bytes, bool]:
        reader = asyncio.StreamReader()
        asyncio.get_running_loop().call_later(
            0.1, reader.feed_data, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        return await workload._sniff(reader)

    buffer, is_http = asyncio.run(run())
    assert is_http and buffer.startswith(b"GET /")
