"""The etcd backend against a real etcd on loopback: CRUD, conflicts, watch, outage."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from axoneme.store.etcd import EtcdStore
from axoneme.store.types import ConflictError, Key, StoreError, WatchEvent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[str]:
    if shutil.which("etcd") is None:
        if os.environ.get("AXONEME_REQUIRE_PRIVILEGED") == "1":
            pytest.fail("etcd is not installed (make deps installs etcd-server)")
        pytest.skip("etcd is not installed (make deps installs etcd-server)")
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    proc = subprocess.Popen(
        [
            "etcd",
            "--data-dir",
            str(tmp_path / "data"),
            "--listen-client-urls",
            url,
            "--advertise-client-urls",
            url,
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{peer}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", client), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("etcd did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "d"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


def test_crud_and_conflicts(etcd: str) -> None:
    async def run() -> None:
        s = EtcdStore(etcd)
        try:
            assert (await s.health()).startswith("Ok etcd")
            a = await s.create(pod("a"))
            rev = int(a["metadata"]["resourceVersion"])
            with pytest.raises(ConflictError):
                await s.create(pod("a"))
            b = await s.put(a, expect_revision=rev)
            assert int(b["metadata"]["resourceVersion"]) > rev
            with pytest.raises(ConflictError):
                await s.put(a, expect_revision=rev)
            got = await s.get(Key("Pod", "d", "a"))
            assert (
                got is not None
                and got["metadata"]["resourceVersion"] == b["metadata"]["resourceVersion"]
            )
            await s.create(pod("b"))
            listing = await s.list("Pod", "d")
            assert [p["metadata"]["name"] for p in listing.items] == ["a", "b"]
            assert (await s.list("Pod", "other")).items == []
            assert await s.delete(Key("Pod", "d", "a"))
            assert not await s.delete(Key("Pod", "d", "a"))
        finally:
            await s.close()

    asyncio.run(run())


def test_watch_from_a_revision(etcd: str) -> None:
    async def run() -> list[tuple[str, str]]:
        s = EtcdStore(etcd)
        try:
            await s.create(pod("old"))
            since = (await s.list("Pod")).revision
            seen: list[WatchEvent] = []

            async def consume() -> None:
                async for event in s.watch("Pod", since):
                    seen.append(event)
                    if len(seen) == 3:
                        return

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.2)
            p = await s.create(pod("new"))
            await s.put(p)
            await s.delete(Key("Pod", "d", "new"))
            await asyncio.wait_for(task, 5)
            return [(e.type, e.object["metadata"]["name"]) for e in seen]
        finally:
            await s.close()

    assert asyncio.run(run()) == [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "new")]


def test_unreachable_store_is_a_store_error() -> None:
    async def run() -> None:
        s = EtcdStore(f"http://127.0.0.1:{free_port()}", timeout=1)
        try:
            with pytest.raises(StoreError, match="unreachable"):
                await s.get(Key("Pod", "d", "a"))
        finally:
            await s.close()

    asyncio.run(run())
