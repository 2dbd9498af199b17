"""Records and directories for the observer tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from axoneme.datapath import events as E
from axoneme.observer.directory import Directory, EndpointMeta, build_directory

CLIENT = EndpointMeta("10.42.1.2", "demo", "client", 300, ("k8s:app=client", "k8s:tier=fe"), 3)
WEB = EndpointMeta("10.42.2.3", "demo", "web-2", 400, ("k8s:app=web",), 0, "node2")
OTHER = EndpointMeta("10.42.1.9", "other", "db-0", 500, ("k8s:app=db",), 4)


def directory() -> Directory:
    return build_directory([CLIENT, WEB, OTHER], {2: ["reserved:world"], 300: ["k8s:app=client"]})


def record(**fields: Any) -> np.ndarray:
    """One struct event (a DROP from client to web by default) as 64 uint8."""
    base: dict[str, Any] = dict(
        ts_ns=1_000_000_000, type=E.EVENT_DROP, verdict=2, dir=1, proto=6, ep_id=3,
        reason=133, src_identity=300, dst_identity=400, saddr="10.42.1.2",
        daddr="10.42.2.3", sport=40000, dport=80, tcp_flags=2, ct_state=0, ifindex=9,
        len=60, cookie=0,
    )  # fmt: skip
    base.update(fields)
    return np.frombuffer(E.encode(E.DatapathEvent(**base)), np.uint8)


def records(*items: dict[str, Any]) -> np.ndarray:
    return np.stack([record(**item) for item in items])
