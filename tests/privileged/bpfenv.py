"""What privileged datapath tests share: the precondition check, a shell helper,
and the endpoint datapath loaded privately next to veths in a private namespace."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from axoneme.datapath.linux.loader import Datapath
from axoneme.datapath.linux.ringbuf import EventReader

REPO = Path(__file__).resolve().parents[2]


def require_datapath() -> None:
    """Skip (fail under AXONEME_REQUIRE_PRIVILEGED=1) naming what is missing, then
    build the BPF objects (a no-op when they are up to date)."""
    reason = None
    if os.geteuid() != 0:
        reason = "needs root (bpf(), bpffs, network namespaces)"
    elif shutil.which("ip") is None:
        reason = "needs iproute2's 'ip' on PATH"
    elif not (shutil.which("clang-19") or shutil.which("clang")):
        reason = "needs clang to build bpf/ (make deps installs it)"
    if reason is not None:
        if os.environ.get("AXONEME_REQUIRE_PRIVILEGED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    subprocess.run(["make", "-s", "-C", str(REPO / "bpf")], check=True)


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@dataclass
class PrivateDatapath:
    netns: str
    pin_dir: Path
    dp: Datapath
    reader: EventReader  # opened before any packet runs: every event is read
    ifindex: dict[str, int]  # the namespace's links by name


@contextlib.contextmanager
def private_datapath(prefix: str, *veths: tuple[str, str]) -> Iterator[PrivateDatapath]:
    """The datapath loaded into ``/sys/fs/bpf/PREFIX-<tag>`` and a namespace
    ``PREFIX-<tag>`` holding the veth pairs ``veths``; both removed afterwards.
    BPF_PROG_TEST_RUN resolves ``skb->ifindex`` in the caller's namespace, so
    runs happen inside ``netns``."""
    require_datapath()
    tag = uuid.uuid4().hex[:8]
    netns, pin_dir = f"{prefix}-{tag}", Path(f"/sys/fs/bpf/{prefix}-{tag}")
    sh("ip", "netns", "add", netns)
    dp = reader = None
    try:
        for a, b in veths:
            sh("ip", "-n", netns, "link", "add", a, "type", "veth", "peer", "name", b)
        links = json.loads(sh("ip", "-n", netns, "-j", "link", "show"))
        dp = Datapath.open(pin_dir)
        reader = dp.events()
        yield PrivateDatapath(
            netns, pin_dir, dp, reader, {x["ifname"]: x["ifindex"] for x in links}
        )
    finally:
        if reader is not None:
            reader.close()
        if dp is not None:
            dp.close()
        Datapath.remove(pin_dir)
        subprocess.run(["ip", "netns", "del", netns], check=False)
