"""The Observer gRPC service (grpc.aio) over any backend: a node's observer or the relay.

Bad requests are answered with INVALID_ARGUMENT and a message that starts
with the offending field (``whitelist[0].source_ip[0]: ...``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import grpc

from axoneme.observer.core import FlowQuery, Observer, parse_request
from axoneme.observer.filters import FilterError
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.observer.proto import observer_pb2_grpc as pbg

__all__ = ["Backend", "NodeBackend", "ObserverService", "start_server"]


class Backend(Protocol):
    def get_flows(
        self, request: pb.GetFlowsRequest, query: FlowQuery
    ) -> AsyncIterator[pb.GetFlowsResponse]: ...

    async def server_status(self) -> pb.ServerStatusResponse: ...

    async def nodes(self) -> list[pb.Node]: ...

    async def namespaces(self) -> list[str]: ...


class NodeBackend:
    """One node's observer as a backend."""

    def __init__(self, observer: Observer, address: str = "") -> None:
        self.observer = observer
        self.address = address

    def get_flows(
        self, request: pb.GetFlowsRequest, query: FlowQuery
    ) -> AsyncIterator[pb.GetFlowsResponse]:
        return self.observer.get_flows(query)

    async def server_status(self) -> pb.ServerStatusResponse:
        return self.observer.status()

    async def nodes(self) -> list[pb.Node]:
        return [self.observer.node_info(self.address)]

    async def namespaces(self) -> list[str]:
        return self.observer.namespaces()


class ObserverService(pbg.ObserverServicer):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def GetFlows(
        self, request: pb.GetFlowsRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[pb.GetFlowsResponse]:
        try:
            query = parse_request(request)
        except FilterError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        async for response in self.backend.get_flows(request, query):
            yield response

    async def ServerStatus(
        self, request: pb.ServerStatusRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ServerStatusResponse:
        return await self.backend.server_status()

    async def GetNodes(
        self, request: pb.GetNodesRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetNodesResponse:
        return pb.GetNodesResponse(nodes=await self.backend.nodes())

    async def GetNamespaces(
        self, request: pb.GetNamespacesRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetNamespacesResponse:
        names = await self.backend.namespaces()
        return pb.GetNamespacesResponse(namespaces=[pb.Namespace(namespace=n) for n in names])


async def start_server(
    backend: Backend, unix_socket: Path | None = None, tcp_address: str = ""
) -> grpc.aio.Server:
    """Serve ``backend`` on a root-only unix socket and/or a TCP address (HOST:PORT)."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pbg.add_ObserverServicer_to_server(ObserverService(backend), server)  # type: ignore[no-untyped-call]
    if unix_socket is not None:
        unix_socket.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            unix_socket.unlink()  # left by a killed process: we own this path
        server.add_insecure_port(f"unix:{unix_socket}")
    if tcp_address:
        try:
            bound = server.add_insecure_port(tcp_address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {tcp_address}: {exc}") from exc
        if bound == 0:
            raise OSError(f"cannot listen on {tcp_address}")
    old = os.umask(0o177)  # the unix socket is born root-only
    try:
        await server.start()
    finally:
        os.umask(old)
    if unix_socket is not None:
        os.chmod(unix_socket, 0o600)
    return server
