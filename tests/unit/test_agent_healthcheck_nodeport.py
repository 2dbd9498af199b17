"""The health-check node port listeners over real HTTP on loopback: ports open,
answer from the latest counts, close, and a port that cannot be bound is
reported and retried without stopping the others."""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import pytest
from aiohttp import ClientSession

from axoneme.agent import healthcheck_nodeport as hc
from axoneme.agent.config import parse_args
from axoneme.agent.loadbalancer import ServiceSync, report
from axoneme.k8s.service import NODE_PORT_RANGE
from axoneme.loadbalancer.config import LBAgentConfig
from axoneme.loadbalancer.healthcheck import HealthCheck
from axoneme.store.types import WatchEvent

HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """Ports of the node port range nothing listens on now (bound and released)."""
    found: list[int] = []
    for port in random.sample(range(*NODE_PORT_RANGE), 200):
        with closing(socket.socket()) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        found.append(port)
        if len(found) == n:
            return found
    raise AssertionError("no free ports in the node port range")


@contextmanager
def squatter(port: int) -> Iterator[socket.socket]:
    """Another process's listener on ``port``."""
    with closing(socket.socket()) as s:
        s.bind((HOST, port))
        s.listen()
        yield s


async def get(
    session: ClientSession, port: int, path: str = "/"
) -> tuple[int, Any, dict[str, Any]]:
    async with session.get(f"http://{HOST}:{port}{path}") as resp:
        return resp.status, resp.headers, json.loads(await resp.read())


async def refused(port: int) -> bool:
    """A new connection is refused (the session's kept-alive ones may outlive a listener)."""
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


def check(port: int, n: int, name: str = "web") -> HealthCheck:
    return HealthCheck(port, "demo", name, n)


def test_open_answer_update_and_close() -> None:
    a, b = free_ports(2)

    async def main() -> None:
        server = hc.HealthCheckServer(HOST)
        await server.start()
        try:
            async with ClientSession() as session:
                await server.set({a: check(a, 1), b: check(b, 0, "other")})
                status, headers, body = await get(session, a, "/healthz")
                assert status == 200
                assert headers["Content-Type"] == "application/json"
                assert headers["X-Content-Type-Options"] == "nosniff"
                assert body == {
                    "service": {"namespace": "demo", "name": "web"},
                    "localEndpoints": 1,
                    "serviceProxyHealthy": True,
                }
                status, _, body = await get(session, b, "/any/path")
                assert (status, body["localEndpoints"], body["service"]["name"]) == (
                    503,
                    0,
                    "other",
                )
                # New counts: answered at once, the port is not reopened.
                await server.set({a: check(a, 0), b: check(b, 2, "other")})
                assert (await get(session, a))[0] == 503
                assert (await get(session, b))[2]["localEndpoints"] == 2
                # A service gone: its port is closed, the other keeps serving.
                await server.set({b: check(b, 2, "other")})
                assert await refused(a)
                assert (await get(session, b))[0] == 200
                assert server.listening == {b}
        finally:
            await server.close()
        assert await refused(b)

    asyncio.run(main())


def test_a_port_that_cannot_be_bound_is_reported_and_retried() -> None:
    taken, fine = free_ports(2)

    async def main() -> None:
        server = hc.HealthCheckServer(HOST)
        await server.start()
        try:
            with squatter(taken):
                await server.set({taken: check(taken, 1), fine: check(fine, 1, "other")})
                assert server.listening == {fine}
                assert "in use" in server.errors[taken], server.errors
                (bad,) = [r for r in server.report() if r["port"] == taken]
                assert (bad["status"], bad["service"]) == (0, "demo/web") and bad["error"]
            await server.set({taken: check(taken, 1), fine: check(fine, 1, "other")})
            assert server.listening == {taken, fine} and not server.errors
            async with ClientSession() as session:
                assert (await get(session, taken))[0] == 200
        finally:
            await server.close()

    asyncio.run(main())


def raw_service(name: str, hc_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "healthCheckNodePort": hc_port,
            "clusterIP": "10.96.0.9",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}],
        },
    }


def raw_slice(svc: str, *nodes: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc}-1",
            "namespace": "demo",
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [f"10.42.{i}.2"], "nodeName": n} for i, n in enumerate(nodes, 1)
        ],
        "ports": [{"name": "http", "port": 8080}],
    }


def test_run_follows_the_service_view_and_closes_when_cancelled() -> None:
    (port,) = free_ports(1)

    async def main() -> None:
        view = ServiceSync()
        on_svc_sync, on_svc_event = view.handlers("Service")
        on_slice_sync, on_slice_event = view.handlers("EndpointSlice")
        server = hc.HealthCheckServer(HOST)
        task = asyncio.create_task(hc.run(view, "node1", server), name="hc-under-test")
        try:
            async with ClientSession() as session:
                await on_svc_sync([raw_service("web", port)])
                await asyncio.sleep(0.2)
                # Slices not listed yet: nothing is answered (no 503 for want of them).
                assert await refused(port)
                await on_slice_sync([raw_slice("web", "node2")])

                async def status() -> int:
                    for _ in range(50):
                        if not await refused(port):
                            return (await get(session, port))[0]
                        await asyncio.sleep(0.05)
                    raise AssertionError(f"{port} never listened")

                assert await status() == 503  # node2's backend only
                await on_slice_event(WatchEvent("MODIFIED", raw_slice("web", "node2", "node1"), 2))
                for _ in range(50):
                    if (await get(session, port))[0] == 200:
                        break
                    await asyncio.sleep(0.05)
                assert (await get(session, port))[2]["localEndpoints"] == 1
                await on_svc_event(WatchEvent("DELETED", raw_service("web", port), 3))
                for _ in range(50):
                    if await refused(port):
                        break
                    await asyncio.sleep(0.05)
                assert await refused(port)
                await on_svc_event(WatchEvent("ADDED", raw_service("web", port), 4))
                assert await status() == 200
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await refused(port)  # cancelled: every listener closed

    asyncio.run(main())


def test_status_report_says_enabled_and_lists_ports() -> None:
    (port,) = free_ports(1)

    async def main() -> dict[str, Any]:
        server = hc.HealthCheckServer(HOST, proxy_healthy=lambda: False)
        await server.start()
        try:
            await server.set({port: check(port, 2)})
            return report(LBAgentConfig(), None, health=server)
        finally:
            await server.close()

    r = asyncio.run(main())
    assert r["healthCheckNodePort"] == "Enabled"
    # Maps not programmed (proxy unhealthy): 503 even with local endpoints.
    assert r["healthCheckNodePorts"] == [
        {"port": port, "service": "demo/web", "localEndpoints": 2, "status": 503, "error": ""}
    ]
    assert report(LBAgentConfig(), None)["healthCheckNodePort"] == "Disabled"


def test_flag_defaults_to_on_as_cilium() -> None:
    base = ["--node", "n", "--store", "embedded:/x"]
    assert parse_args(base).lb.health_check_node_port is True
    off = parse_args([*base, "--enable-health-check-nodeport", "false"]).lb
    assert off.health_check_node_port is False
