"""Kubernetes API source: the store's read side served by a real cluster's API server.

For running the agent's watchers against a Kubernetes cluster rather than
etcd: ``get``, ``list``, ``watch``, ``list_all`` and ``watch_all`` go to the
API server through ``kubernetes_asyncio`` (the maintained asyncio client: it
loads kubeconfig or the in-cluster service account and handles auth and TLS);
what the answers mean is in ``kubetranslate``. The source is read-only: every
write and every lease call raises StoreError. The client is imported only
when a KubeStore is built, so the agent does not pay for it otherwise.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import AsyncIterator
from typing import Any

from axoneme.store.kubetranslate import (
    RESOURCES,
    Bookmark,
    ResourceExpiredError,
    from_list,
    from_object,
    resource_of,
    status_error,
    translate_line,
    watch_query,
)
from axoneme.store.types import Key, LeaseID, Listing, Resource, StoreError, WatchEvent

READ_ONLY = "the Kubernetes API source is read-only"


class KubeStore:
    """``kubeconfig``: a kubeconfig file; None: the in-cluster service account."""

    def __init__(self, kubeconfig: str | None = None, *, timeout: float = 10.0) -> None:
        self._kubeconfig = kubeconfig
        self._timeout = timeout
        self._client: Any = None

    async def _api(self) -> Any:
        if self._client is None:
            try:
                # Untyped at its edges: held as Any, used only in this method and _get_json.
                client: Any = importlib.import_module("kubernetes_asyncio.client")
                config: Any = importlib.import_module("kubernetes_asyncio.config")
            except ImportError as exc:
                raise StoreError(
                    "the Kubernetes API source needs kubernetes_asyncio (pip install -e .)"
                ) from exc
            try:
                if self._kubeconfig is None:
                    config.load_incluster_config()
                    self._client = client.ApiClient()
                else:
                    conf = client.Configuration()
                    await config.load_kube_config(
                        config_file=self._kubeconfig, client_configuration=conf
                    )
                    self._client = client.ApiClient(configuration=conf)
            except Exception as exc:  # the client raises its own ConfigException and OSError
                raise StoreError(f"Kubernetes client configuration: {exc}") from exc
        return self._client

    async def _get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> Any:
        api = await self._api()
        try:
            resp = await api.call_api(
                path,
                "GET",
                query_params=query or [],
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=self._timeout,
            )
            # Unpreloaded answers are not status-checked by the client: we do it.
            body = json.loads(await resp.read())
            if not 200 <= resp.status < 300:
                if isinstance(body, dict) and body.get("kind") == "Status":
                    raise status_error(body, f"GET {path}")
                raise StoreError(f"Kubernetes API GET {path}: HTTP {resp.status}")
            return body
        except Exception as exc:
            raise self._error(exc, path) from exc

    @staticmethod
    def _error(exc: Exception, path: str) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        status = getattr(exc, "status", None)
        body = getattr(exc, "body", None)
        if status is not None and body:
            try:
                return status_error(json.loads(body), f"GET {path}")
            except ValueError:
                pass
        return StoreError(f"Kubernetes API GET {path}: {exc}")

    async def get(self, key: Key) -> Resource | None:
        res = resource_of(key.kind)
        try:
            obj = await self._get_json(res.path(key.namespace or None, key.name))
        except StoreError as exc:
            if "(404)" in str(exc):
                return None
            raise
        return from_object(key.kind, obj)

    async def list(self, kind: str, namespace: str | None = None) -> Listing:
        return from_list(kind, await self._get_json(resource_of(kind).path(namespace)))

    async def watch(self, kind: str, since: int) -> AsyncIterator[WatchEvent]:
        api = await self._api()
        path = resource_of(kind).path()
        try:
            resp = await api.call_api(
                path,
                "GET",
                query_params=watch_query(since),
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=None,
            )
            if not 200 <= resp.status < 300:
                body = json.loads(await resp.read())
                if isinstance(body, dict) and body.get("kind") == "Status":
                    raise status_error(body, f"{kind} watch")
                raise StoreError(f"Kubernetes watch on {kind}: HTTP {resp.status}")
            async for line in resp.content:
                event = translate_line(kind, line)
                if event is None or isinstance(event, Bookmark):
                    continue  # bookmarks only move the server's position
                yield event
        except StoreError:
            raise
        except Exception as exc:
            raise self._error(exc, path) from exc
        # The server ends watches after timeoutSeconds: the informer lists again.
        raise StoreError(f"Kubernetes watch on {kind} ended")

    async def list_all(self) -> Listing:
        """Every kind's list. Kubernetes has no cross-kind snapshot, so the revision is the
        lowest of the lists': watching from it may repeat events, never skips one."""
        listings = [await self.list(kind) for kind in RESOURCES]
        items = [obj for listing in listings for obj in listing.items]
        return Listing(items, min(listing.revision for listing in listings))

    async def watch_all(self, since: int) -> AsyncIterator[WatchEvent]:
        """Every kind's watch merged as events arrive (per kind in order, not across kinds)."""
        queue: asyncio.Queue[WatchEvent | BaseException] = asyncio.Queue()

        async def pump(kind: str) -> None:
            try:
                async for event in self.watch(kind, since):
                    await queue.put(event)
            except BaseException as exc:  # handed to the consumer, who relists
                await queue.put(exc)

        tasks = [asyncio.ensure_future(pump(kind)) for kind in RESOURCES]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    if isinstance(item, StoreError):
                        raise item
                    raise StoreError(f"Kubernetes watch failed: {item}") from item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def health(self) -> str:
        data = await self._get_json("/version")
        return f"Ok Kubernetes {data.get('gitVersion', '?')}"

    async def create(self, obj: Resource, *, lease: LeaseID | None = None) -> Resource:
        raise StoreError(READ_ONLY)

    async def put(
        self, obj: Resource, expect_revision: int | None = None, *, lease: LeaseID | None = None
    ) -> Resource:
        raise StoreError(READ_ONLY)

    async def delete(self, key: Key) -> int | None:
        raise StoreError(READ_ONLY)

    async def grant(self, ttl: int) -> LeaseID:
        raise StoreError(f"{READ_ONLY}: no leases")

    async def keepalive(self, lease: LeaseID) -> int:
        raise StoreError(f"{READ_ONLY}: no leases")

    async def revoke(self, lease: LeaseID) -> None:
        raise StoreError(f"{READ_ONLY}: no leases")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


__all__ = ["KubeStore", "ResourceExpiredError"]
