"""The health responder and the HTTP probe, over real TCP on loopback."""

from __future__ import annotations

import asyncio
import socket

from axoneme.health.responder import http_probe, parse_hello, responder_app, serve


def test_parse_hello() -> None:
    ok = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"node": "n1"}'
    assert parse_hello(ok) == {"node": "n1"}
    assert parse_hello(b"HTTP/1.1 404 Not Found\r\n\r\n{}") is None
    assert parse_hello(b"HTTP/1.1 200 OK\r\n\r\nnot json") is None
    assert parse_hello(b"HTTP/1.1 200 OK\r\n\r\n[1]") is None
    assert parse_hello(b"") is None


def test_probe_gets_the_node_answer_with_its_health_ip() -> None:
    async def scenario() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        runner = await serve(responder_app("node1", "node", "10.42.1.2"), sock)
        try:
            answer = await http_probe("127.0.0.1", port, timeout=2)
            assert answer is not None and answer.seconds > 0
            assert answer.body == {"node": "node1", "role": "node", "healthIP": "10.42.1.2"}
        finally:
            await runner.cleanup()
        assert await http_probe("127.0.0.1", port, timeout=0.5) is None  # nobody listens

    asyncio.run(scenario())
