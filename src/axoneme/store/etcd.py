"""etcd backend, spoken through etcd's v3 JSON gateway (``/v3/kv/*``, ``/v3/watch``).

The gateway is part of every etcd ≥ 3.4 server, so the agent needs no gRPC
stubs or protobuf runtime for its store. Keys and values are base64 in the
gateway's JSON; objects are stored as compact JSON under
``/axoneme/v1/<plural>/[<namespace>/]<name>``. An object's
``metadata.resourceVersion`` is its etcd ``mod_revision``. Leases are etcd's
own (``/v3/lease/*``): an object put with a lease goes when the lease does.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from axoneme.store.types import (
    ConflictError,
    Key,
    LeaseID,
    LeaseNotFoundError,
    Listing,
    Resource,
    StoreError,
    WatchEvent,
    kind_prefix,
)

PREFIX = "/axoneme/v1"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def prefix_end(prefix: str) -> str:
    """etcd's range_end for "every key starting with prefix"."""
    raw = prefix.encode()
    return (raw[:-1] + bytes([raw[-1] + 1])).decode()


def _put_request(key: str, value: str, lease: LeaseID | None) -> dict[str, Any]:
    request: dict[str, Any] = {"key": _b64(key), "value": value}
    if lease is not None:
        request["lease"] = str(lease)
    return request


def decode_kv(kv: dict[str, Any]) -> Resource:
    obj: Resource = json.loads(base64.b64decode(kv["value"]))
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv["mod_revision"])
    return obj


def encode_object(obj: Resource) -> str:
    body = dict(obj)
    meta = dict(body.get("metadata", {}))
    meta.pop("resourceVersion", None)  # the revision is etcd's, never stored
    body["metadata"] = meta
    return base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def decode_watch_event(raw: dict[str, Any], kind: str | None) -> WatchEvent | None:
    """Turn one gateway watch event into a WatchEvent (None for other kinds; kind None = any)."""
    kv = raw["kv"]
    revision = int(kv["mod_revision"])
    if raw.get("type") == "DELETE":
        prev = raw.get("prev_kv")
        if prev is None:
            return None
        obj = decode_kv(prev)
        obj["metadata"]["resourceVersion"] = str(revision)
        return WatchEvent("DELETED", obj, revision) if kind in (None, obj.get("kind")) else None
    obj = decode_kv(kv)
    if kind is not None and obj.get("kind") != kind:
        return None
    created = kv.get("create_revision") == kv.get("mod_revision")
    return WatchEvent("ADDED" if created else "MODIFIED", obj, revision)


class EtcdStore:
    """``endpoint`` is ``http://HOST:PORT`` or ``unix:PATH`` (etcd's unix listener)."""

    def __init__(self, endpoint: str, *, timeout: float = 5.0) -> None:
        self._unix_path = endpoint.removeprefix("unix:") if endpoint.startswith("unix:") else None
        self._endpoint = "http://etcd" if self._unix_path else endpoint.rstrip("/")
        self._name = endpoint
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.UnixConnector(path=self._unix_path) if self._unix_path else None
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._http().post(
                f"{self._endpoint}{path}", json=body, timeout=self._timeout
            ) as resp:
                data: dict[str, Any] = await resp.json(content_type=None)
                if resp.status != 200:
                    message = str(data.get("message", data))
                    if "lease not found" in message:
                        raise LeaseNotFoundError(f"etcd {path}: {message}")
                    raise StoreError(f"etcd {path}: {message}")
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StoreError(f"etcd at {self._name} unreachable: {exc}") from exc

    async def get(self, key: Key) -> Resource | None:
        data = await self._call("/v3/kv/range", {"key": _b64(key.path(PREFIX))})
        kvs = data.get("kvs", [])
        return decode_kv(kvs[0]) if kvs else None

    async def list(self, kind: str, namespace: str | None = None) -> Listing:
        prefix = kind_prefix(PREFIX, kind, namespace)
        data = await self._call(
            "/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        )
        items = [decode_kv(kv) for kv in data.get("kvs", [])]
        return Listing(items, int(data["header"]["revision"]))

    async def _txn(
        self, key: str, compare: dict[str, Any], value: str, lease: LeaseID | None
    ) -> dict[str, Any]:
        return await self._call(
            "/v3/kv/txn",
            {
                "compare": [{"key": _b64(key), **compare}],
                "success": [{"request_put": _put_request(key, value, lease)}],
                "failure": [{"request_range": {"key": _b64(key)}}],
            },
        )

    async def create(self, obj: Resource, *, lease: LeaseID | None = None) -> Resource:
        key = Key.of(obj)
        # create_revision == 0 means "the key does not exist".
        data = await self._txn(
            key.path(PREFIX),
            {"target": "CREATE", "result": "EQUAL", "create_revision": "0"},
            encode_object(obj),
            lease,
        )
        if not data.get("succeeded"):
            raise ConflictError(f"{key} already exists")
        return self._stored(obj, data)

    async def put(
        self, obj: Resource, expect_revision: int | None = None, *, lease: LeaseID | None = None
    ) -> Resource:
        key = Key.of(obj)
        if expect_revision is None:
            data = await self._call(
                "/v3/kv/put", _put_request(key.path(PREFIX), encode_object(obj), lease)
            )
            return self._stored(obj, data)
        data = await self._txn(
            key.path(PREFIX),
            {"target": "MOD", "result": "EQUAL", "mod_revision": str(expect_revision)},
            encode_object(obj),
            lease,
        )
        if not data.get("succeeded"):
            raise ConflictError(f"{key} changed since revision {expect_revision}")
        return self._stored(obj, data)

    @staticmethod
    def _stored(obj: Resource, data: dict[str, Any]) -> Resource:
        stored: Resource = json.loads(json.dumps(obj))
        stored.setdefault("metadata", {})["resourceVersion"] = str(data["header"]["revision"])
        return stored

    async def delete(self, key: Key) -> int | None:
        data = await self._call("/v3/kv/deleterange", {"key": _b64(key.path(PREFIX))})
        if int(data.get("deleted", 0)) == 0:
            return None
        return int(data["header"]["revision"])

    async def list_all(self) -> Listing:
        prefix = PREFIX + "/"
        data = await self._call(
            "/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        )
        items = [decode_kv(kv) for kv in data.get("kvs", [])]
        return Listing(items, int(data["header"]["revision"]))

    def watch_all(self, since: int) -> AsyncIterator[WatchEvent]:
        return self._watch_prefix(PREFIX + "/", since, None)

    def watch(self, kind: str, since: int) -> AsyncIterator[WatchEvent]:
        return self._watch_prefix(kind_prefix(PREFIX, kind), since, kind)

    async def _watch_prefix(
        self, prefix: str, since: int, kind: str | None
    ) -> AsyncIterator[WatchEvent]:
        request = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _b64(prefix_end(prefix)),
                "start_revision": str(since + 1),
                "prev_kv": True,
            }
        }
        try:
            async with self._http().post(
                f"{self._endpoint}/v3/watch",
                json=request,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            ) as resp:
                if resp.status != 200:
                    raise StoreError(f"etcd watch: HTTP {resp.status}")
                # The gateway streams one JSON object per line.
                async for line in resp.content:
                    if not line.strip():
                        continue
                    result = json.loads(line).get("result", {})
                    if "compact_revision" in result and int(result["compact_revision"]) > 0:
                        raise StoreError(f"etcd watch: revision {since} was compacted")
                    for raw in result.get("events", []):
                        event = decode_watch_event(raw, kind)
                        if event is not None:
                            yield event
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # ValueError: a line longer than the reader's limit; relisting recovers.
            raise StoreError(f"etcd watch on {self._name} broke: {exc}") from exc
        raise StoreError(f"etcd watch on {self._name} ended")

    async def health(self) -> str:
        data = await self._call("/v3/maintenance/status", {})
        return f"Ok etcd {data.get('version', '?')} at {self._name}"

    async def grant(self, ttl: int) -> LeaseID:
        if ttl < 1:
            raise ValueError(f"lease ttl: {ttl} must be at least 1 second")
        data = await self._call("/v3/lease/grant", {"TTL": str(ttl)})
        return int(data["ID"])

    async def keepalive(self, lease: LeaseID) -> int:
        # The gateway answers a one-shot keep-alive with one stream message; a
        # lease that is gone comes back without a TTL (etcd leaves out zeros).
        data = await self._call("/v3/lease/keepalive", {"ID": str(lease)})
        ttl = int(data.get("result", {}).get("TTL", 0))
        if ttl <= 0:
            raise LeaseNotFoundError(f"etcd lease {lease:x} expired or was revoked")
        return ttl

    async def revoke(self, lease: LeaseID) -> None:
        with contextlib.suppress(LeaseNotFoundError):  # already gone: nothing to do
            await self._call("/v3/kv/lease/revoke", {"ID": str(lease)})  # etcd 3.4's path

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
