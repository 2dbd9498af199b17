"""``axoneme identity``, ``axoneme bpf …`` and ``axoneme monitor``: what the cluster and
the kernel hold right now.

``bpf`` commands read the pinned maps themselves (as ``cilium-dbg bpf`` does), so
they show what the kernel enforces, not what the agent believes.
"""

from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from axoneme.cli.context import AgentRef, CLIError, open_store
from axoneme.cli.output import table
from axoneme.identity.allocator import parse_identity, reserved_identities
from axoneme.lab.control import read_state
from axoneme.lab.topology import BPF_PIN_ROOT
from axoneme.labels.model import LabelSet, format_labels
from axoneme.store.types import StoreError

PROTOS = {1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"}
DIRS = {0: "ingress", 1: "egress"}
VERDICTS = {1: "allow", 2: "deny"}


async def identities() -> dict[int, LabelSet]:
    store = open_store()
    try:
        items = (await store.list("CiliumIdentity")).items
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        await store.close()
    found: dict[int, LabelSet] = dict(reserved_identities())
    for obj in items:
        parsed = parse_identity(obj)
        if parsed is not None:
            found[int(parsed[0])] = parsed[1]
    return found


async def collect(grace: float) -> list[int]:
    """Garbage-collect identities no live node uses (live = the Nodes in the store)."""
    from axoneme.identity.allocator import collect_garbage

    store = open_store()
    try:
        nodes = [n["metadata"]["name"] for n in (await store.list("Node")).items]
        return [int(i) for i in await collect_garbage(store, nodes, grace=grace)]
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        await store.close()


def identity_table(found: dict[int, LabelSet]) -> str:
    rows: list[list[str]] = []
    for num in sorted(found):
        labels = format_labels(found[num]) or ["(none)"]
        rows.append([str(num), labels[0]])
        rows += [["", extra] for extra in labels[1:]]
    return table(["ID", "LABELS"], rows)


# ---- bpf map dumps ------------------------------------------------------------------


def pin_dirs(node: str | None) -> list[tuple[str, Path]]:
    state = read_state()
    if state is None:
        from axoneme.agent.config import DEFAULT_BPF_PIN_DIR

        if node:
            raise CLIError(f"--node {node}: no lab is running to find that node in")
        return [("local", DEFAULT_BPF_PIN_DIR)]
    names = [n["name"] for n in state["nodes"]]
    if node and node not in names:
        raise CLIError(f"--node: no node {node!r} in the lab (nodes: {', '.join(names)})")
    return [(n, BPF_PIN_ROOT / n) for n in names if not node or n == node]


def _datapath(pin_dir: Path) -> Any:
    from axoneme.datapath.linux.loader import Datapath

    if not (pin_dir / "axo_ipcache").exists():
        raise CLIError(f"no datapath pinned in {pin_dir} (is the agent running?)")
    return Datapath.open(pin_dir)


def bpf_ipcache(node: str | None) -> str:
    blocks = []
    for name, pin in pin_dirs(node):
        dp = _datapath(pin)
        try:
            rows = [
                [prefix, f"identity={v.identity} tunnelendpoint={v.tunnel_ip}"]
                for prefix, v in dp.ipcache.items()
            ]
        finally:
            dp.close()
        blocks.append(f"# {name}\n" + table(["IP PREFIX/ADDRESS", "IDENTITY"], rows))
    return "\n\n".join(blocks)


def bpf_policy(node: str | None, ep_id: int) -> str:
    blocks = []
    for name, pin in pin_dirs(node):
        dp = _datapath(pin)
        try:
            entries: list[list[str]] = []
            for key, set_id in dp.policy.items():
                if key.ep_id == ep_id:
                    peer = "ANY" if key.identity == 0 else str(key.identity)
                    entries += _port_rows(DIRS[key.dir], peer, dp.ports.entries(set_id))
            for ckey, set_id in dp.policy_cidr.items():
                if ckey.ep_id == ep_id:
                    entries += _port_rows(DIRS[ckey.dir], ckey.prefix, dp.ports.entries(set_id))
            flags = next((i.flags for _, i in dp.lxc.items() if i.ep_id == ep_id), None)
        finally:
            dp.close()
        if flags is None:
            continue
        head = (
            f"# {name} endpoint {ep_id}: ingress "
            f"{'enforced' if flags & 1 else 'not enforced'}, egress "
            f"{'enforced' if flags & 2 else 'not enforced'}"
            f"{' (audit)' if flags & 12 else ''}"
        )
        blocks.append(
            head
            + "\n"
            + table(
                ["DIRECTION", "PEER", "PROTO", "PORT", "VERDICT"],
                entries or [["-", "-", "-", "-", "(no entries)"]],
            )
        )
    if not blocks:
        raise CLIError(f"endpoint {ep_id} is not on {'node ' + node if node else 'any node'}")
    return "\n\n".join(blocks)


def _port_rows(direction: str, peer: str, entries: list[Any]) -> list[list[str]]:
    rows = []
    for e in entries:
        proto_bits = max(0, min(e.prefixlen - 32, 8))
        proto = "ANY" if proto_bits < 8 else PROTOS.get(e.proto, str(e.proto)).upper()
        port_bits = max(0, e.prefixlen - 48)
        if proto_bits < 8 or port_bits == 0:
            port = "ANY"
        else:
            size = 1 << (16 - port_bits)
            port = str(e.port) if size == 1 else f"{e.port}-{e.port + size - 1}"
        rows.append([direction, peer, proto, port, VERDICTS.get(e.verdict, str(e.verdict))])
    return rows


def bpf_ct(node: str | None) -> str:
    blocks = []
    now = time.monotonic_ns()
    for name, pin in pin_dirs(node):
        dp = _datapath(pin)
        try:
            rows = []
            for k, v in dp.ct.items():
                proto = PROTOS.get(k.proto, str(k.proto)).upper()
                idle = max(0, (now - v.last_seen_ns) // 1_000_000_000)
                rows.append(
                    f"{proto} {'IN' if k.dir == 0 else 'OUT'} {k.saddr}:{k.sport} -> "
                    f"{k.daddr}:{k.dport} idle={idle}s Packets={v.packets} "
                    f"Bytes={v.bytes} SourceSecurityID={v.src_identity} "
                    f"EndpointID={v.ep_id}"
                )
        finally:
            dp.close()
        blocks.append(f"# {name}\n" + ("\n".join(rows) or "(empty)"))
    return "\n\n".join(blocks)


# ---- monitor ------------------------------------------------------------------------


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("agent")
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _stream(ref: AgentRef, out: queue.Queue[tuple[str, dict[str, Any]]]) -> None:
    conn = _Unix(ref.socket)
    try:
        conn.request("GET", "/v1/monitor")
        resp = conn.getresponse()
        if resp.status != 200:
            out.put((ref.node, {"type": "ERROR", "msg": f"HTTP {resp.status}"}))
            return
        while True:
            line = resp.readline()
            if not line:
                return
            out.put((ref.node, json.loads(line)))
    except OSError as exc:
        out.put((ref.node, {"type": "ERROR", "msg": str(exc)}))
    finally:
        conn.close()


def monitor(
    refs: list[AgentRef], types: set[str], limit: int | None, duration: float | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    for ref in refs:
        threading.Thread(target=_stream, args=(ref, events), daemon=True).start()
    deadline = time.monotonic() + duration if duration else None
    seen = 0
    while limit is None or seen < limit:
        wait = None if deadline is None else deadline - time.monotonic()
        if wait is not None and wait <= 0:
            return
        try:
            node, event = events.get(timeout=wait)
        except queue.Empty:
            return
        if event.get("type") == "ERROR":
            raise CLIError(f"monitor on {node}: {event['msg']}")
        if types and event.get("typeName", "").lower().replace("_", "-") not in types:
            continue
        seen += 1
        yield node, event


TCP_FLAGS = ((0x02, "SYN"), (0x10, "ACK"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"))


def format_event(node: str, e: dict[str, Any]) -> str:
    if e.get("type") == "LOST":
        return f"[{node}] lost {e['count']} events (monitor too slow)"
    proto = PROTOS.get(e["proto"], str(e["proto"]))
    flags = " ".join(n for bit, n in TCP_FLAGS if e["tcp_flags"] & bit) if proto == "tcp" else ""
    tuple_ = f"{e['saddr']}:{e['sport']} -> {e['daddr']}:{e['dport']} {proto} {flags}".rstrip()
    ids = f"identity {e['src_identity']}->{e['dst_identity']}"
    kind = e["typeName"]
    if kind == "DROP":
        reason = e.get("reasonText") or e["reasonName"]
        return (
            f"[{node}] xx drop ({reason}) to endpoint {e['ep_id']}, "
            f"ifindex {e['ifindex']}, {ids}: {tuple_}"
        )
    if kind == "POLICY_VERDICT":
        action = {"FORWARDED": "allow", "DROPPED": "deny", "AUDIT": "audit"}.get(
            e["verdictName"], e["verdictName"].lower()
        )
        return (
            f"[{node}] Policy verdict log: local EP ID {e['ep_id']}, remote ID "
            f"{e['src_identity'] if e['direction'] == 'ingress' else e['dst_identity']}, "
            f"proto {e['proto']}, {e['direction']}, action {action}, {tuple_}"
        )
    arrow = "->" if e["direction"] == "ingress" else "<-"
    return (
        f"[{node}] {arrow} endpoint {e['ep_id']} {ids} state {e['ctState']} "
        f"ifindex {e['ifindex']}: {tuple_}"
    )
