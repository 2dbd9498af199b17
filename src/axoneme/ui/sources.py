"""Where the UI's data comes from: flows from the relay's gRPC API, health from the agents.

The server depends only on the two small Protocols here, so its tests feed
it flows from memory; the real sources are thin adapters.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import grpc

from axoneme.api.client import AgentAPIError, AgentClient, AgentUnavailableError
from axoneme.cli.context import AgentRef
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.observer.proto import observer_pb2_grpc as pbg

__all__ = ["AgentHealth", "FlowSource", "HealthSource", "RelayFlows", "SourceError"]


class SourceError(Exception):
    """The flow source refused or failed a request (the message is for the user)."""


class FlowSource(Protocol):
    def flows(self, request: pb.GetFlowsRequest) -> AsyncIterator[pb.GetFlowsResponse]: ...

    async def namespaces(self) -> list[str]: ...


class HealthSource(Protocol):
    async def reports(self) -> list[dict[str, Any]]: ...


class RelayFlows:
    """The relay's (or one observer's) Observer API at a gRPC target (``unix:PATH``)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> pbg.ObserverStub:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.target)
        return pbg.ObserverStub(self._channel)  # type: ignore[no-untyped-call]

    async def flows(self, request: pb.GetFlowsRequest) -> AsyncIterator[pb.GetFlowsResponse]:
        call = self._stub().GetFlows(request)
        try:
            async for resp in call:
                yield resp
        except grpc.aio.AioRpcError as exc:
            raise SourceError(f"{self.target}: {exc.details()}") from None
        finally:
            call.cancel()

    async def namespaces(self) -> list[str]:
        try:
            resp = await self._stub().GetNamespaces(pb.GetNamespacesRequest(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            raise SourceError(f"{self.target}: {exc.details()}") from None
        return sorted({n.namespace for n in resp.namespaces})

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class AgentHealth:
    """Every agent's ``/v1/health`` report; agents without health checking are skipped."""

    def __init__(self, refs: Sequence[AgentRef]) -> None:
        self._refs = list(refs)

    @staticmethod
    def _one(ref: AgentRef) -> dict[str, Any] | None:
        try:
            report: dict[str, Any] = AgentClient(ref.socket, timeout=3).get("/v1/health")
            return report
        except (AgentAPIError, AgentUnavailableError):
            return None

    async def reports(self) -> list[dict[str, Any]]:
        found = await asyncio.gather(*(asyncio.to_thread(self._one, r) for r in self._refs))
        return [r for r in found if r is not None]
