"""``axoneme observe``: flows from the relay (or one node's observer), Hubble's flags.

Filter flags become FlowFilters the way ``hubble observe`` builds them:
``--from-*``/``--to-*`` set the source/destination field; a symmetric flag
(``--pod``, ``--namespace``, ``--label``, ``--ip``, ``--port``, ``--identity``)
splits the whitelist into two filters, one with the source field and one with
the destination field, so a flow matches from either side. Everything else
(verdict, protocol, type, node...) goes into both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from axoneme.cli.context import CLIError
from axoneme.observer import flow as F
from axoneme.observer import printer
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.observer.proto import observer_pb2_grpc as pbg

__all__ = ["add_parser", "build_request", "run"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_VERDICTS = ("FORWARDED", "DROPPED", "AUDIT", "ERROR")
_TYPES = ("drop", "trace", "policy-verdict")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    o = sub.add_parser("observe", help="flows, as hubble observe (status: observer status)")
    o.add_argument(
        "what",
        nargs="?",
        default="flows",
        choices=["flows", "status", "nodes"],
        help="flows (default), status, or nodes",
    )
    where = o.add_argument_group("where from")
    where.add_argument(
        "--server", help="unix:PATH of an observer or relay (default: the lab relay)"
    )
    where.add_argument("--node", help="this lab node's observer instead of the relay")
    what = o.add_argument_group("which flows")
    what.add_argument("-f", "--follow", action="store_true", help="keep printing new flows")
    what.add_argument("--last", type=int, help="the last N flows (default 20 unless following)")
    what.add_argument("--first", type=int, help="the first N flows held")
    what.add_argument("--since", help="RFC 3339 time or a duration ago (30s, 5m, 1h)")
    what.add_argument("--until", help="RFC 3339 time or a duration ago")
    flt = o.add_argument_group("filters (repeatable flags OR their values)")
    for name, help_ in (
        ("pod", "[NAMESPACE/]POD-PREFIX, either side"),
        ("namespace", "namespace, either side"),
        ("label", "label selector, either side (app=web,tier!=db)"),
        ("ip", "address or CIDR, either side"),
        ("port", "L4 port, either side"),
        ("identity", "numeric security identity, either side"),
    ):
        short = {"namespace": ["-n"], "label": ["-l"]}.get(name, [])
        flt.add_argument(*short, f"--{name}", action="append", default=[], help=help_)
        for side in ("from", "to"):
            flt.add_argument(
                f"--{side}-{name}", action="append", default=[], help=f"{side} side only"
            )
    flt.add_argument("--verdict", action="append", default=[], help="|".join(_VERDICTS))
    flt.add_argument("--protocol", action="append", default=[], help="tcp, udp, icmp, sctp")
    flt.add_argument(
        "-t", "--type", action="append", default=[], help="drop, trace[:SUBTYPE], policy-verdict"
    )
    flt.add_argument("--drop-reason-desc", action="append", default=[], help="e.g. POLICY_DENIED")
    flt.add_argument("--node-name", action="append", default=[], help="node name glob")
    flt.add_argument(
        "--traffic-direction", action="append", default=[], choices=["ingress", "egress"]
    )
    out = o.add_argument_group("output")
    out.add_argument(
        "-o", "--output", default="compact", choices=["compact", "dict", "json", "table"]
    )
    out.add_argument("--print-node-name", action="store_true", help="node name in compact lines")
    out.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")


def parse_time(flag: str, text: str, now: float) -> Timestamp:
    m = _DURATION.match(text)
    if m:
        at = now - float(m[1]) * _UNIT[m[2]]
    else:
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise CLIError(
                f"{flag}: {text!r} is neither an RFC 3339 time nor a duration (30s, 5m, 1h)"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        at = parsed.timestamp()
    ns = int(at * 1e9)
    return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


@dataclass
class _Pair:
    """The two whitelist filters: ``src`` gets source fields, ``dst`` destination fields."""

    src: pb.FlowFilter
    dst: pb.FlowFilter
    symmetric: bool = False


def _pod(flag: str, value: str, namespaces: list[str]) -> str:
    if "/" in value:
        if not value.partition("/")[0]:
            raise CLIError(f"{flag}: {value!r} has an empty namespace")
        return value
    if not value:
        raise CLIError(f"{flag}: empty pod name")
    return f"{namespaces[0] if len(namespaces) == 1 else 'default'}/{value}"


def _port(flag: str, value: str) -> str:
    if not value.isdigit() or not 0 < int(value) <= 65535:
        raise CLIError(f"{flag}: {value!r} is not a port (1-65535)")
    return value


def _identity(flag: str, value: str) -> int:
    if not value.isdigit():
        raise CLIError(f"{flag}: {value!r} is not a numeric identity")
    return int(value)


def _sided(args: argparse.Namespace, pair: _Pair) -> None:
    ns_all = args.namespace + args.from_namespace + args.to_namespace

    def pod(flag: str, value: str) -> str:
        return _pod(flag, value, ns_all)

    def same(_flag: str, value: str) -> str:
        return value

    converters: dict[str, tuple[str, Callable[[str, str], object]]] = {
        "pod": ("pod", pod),
        "namespace": ("pod", same),  # handled by _namespaces, after the pods
        "label": ("label", same),
        "ip": ("ip", same),
        "port": ("port", _port),
        "identity": ("identity", _identity),
    }
    for name, (field, conv) in converters.items():
        if name == "namespace":
            _namespaces(args, pair)
            continue
        for value in getattr(args, f"from_{name}"):
            for flt in (pair.src, pair.dst):
                getattr(flt, f"source_{field}").append(conv(f"--from-{name}", value))
        for value in getattr(args, f"to_{name}"):
            for flt in (pair.src, pair.dst):
                getattr(flt, f"destination_{field}").append(conv(f"--to-{name}", value))
        for value in getattr(args, name):
            pair.symmetric = True
            pair.src.__getattribute__(f"source_{field}").append(conv(f"--{name}", value))
            pair.dst.__getattribute__(f"destination_{field}").append(conv(f"--{name}", value))


def _namespaces(args: argparse.Namespace, pair: _Pair) -> None:
    """A namespace is a pod filter "NS/" on a side that names no pod already: with
    ``--from-pod`` it would otherwise widen the filter (values of one field OR)."""
    for flt in (pair.src, pair.dst):
        if not flt.source_pod:
            flt.source_pod.extend(f"{ns}/" for ns in args.from_namespace)
        if not flt.destination_pod:
            flt.destination_pod.extend(f"{ns}/" for ns in args.to_namespace)
    if args.namespace:
        pair.symmetric = True
        if not pair.src.source_pod:
            pair.src.source_pod.extend(f"{ns}/" for ns in args.namespace)
        if not pair.dst.destination_pod:
            pair.dst.destination_pod.extend(f"{ns}/" for ns in args.namespace)


def _common(args: argparse.Namespace) -> pb.FlowFilter:
    flt = pb.FlowFilter()
    for v in args.verdict:
        if v.upper() not in _VERDICTS:
            raise CLIError(f"--verdict: {v!r} is not one of {', '.join(_VERDICTS)}")
        flt.verdict.append(pb.Verdict.Value(v.upper()))  # type: ignore[arg-type]
    for p in args.protocol:
        if p.lower() not in F.PROTO_BY_NAME:
            raise CLIError(f"--protocol: {p!r} is not one of tcp, udp, icmp, sctp")
        flt.protocol.append(p.lower())
    for t in args.type:
        kind, _, sub = t.partition(":")
        if kind not in _TYPES:
            raise CLIError(f"--type: {t!r} is not one of {', '.join(_TYPES)}")
        et = pb.EventTypeFilter(type=F.TYPE_BY_NAME[kind])
        if sub:
            if kind != "trace" or sub not in F.TRACE_SUBTYPE_BY_NAME:
                names = ", ".join(F.TRACE_SUBTYPE_BY_NAME)
                raise CLIError(f"--type: {t!r}: only trace has subtypes ({names})")
            et.match_sub_type = True
            et.sub_type = F.TRACE_SUBTYPE_BY_NAME[sub]
        flt.event_type.append(et)
    flt.drop_reason_desc.extend(r.upper() for r in args.drop_reason_desc)
    flt.node_name.extend(args.node_name)
    flt.traffic_direction.extend(
        pb.INGRESS if d == "ingress" else pb.EGRESS for d in args.traffic_direction
    )
    return flt


def build_request(args: argparse.Namespace, now: float | None = None) -> pb.GetFlowsRequest:
    """The GetFlowsRequest the flags describe; CLIError naming the flag on bad input."""
    now = time.time() if now is None else now
    for flag in ("last", "first"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise CLIError(f"--{flag}: {value} must be at least 1")
    if args.last is not None and args.first is not None:
        raise CLIError("--first: cannot be combined with --last")
    if args.first is not None and args.follow:
        raise CLIError("--first: cannot be combined with --follow")
    req = pb.GetFlowsRequest(follow=args.follow)
    if args.first is not None:
        req.number, req.first = args.first, True
    elif args.last is not None:
        req.number = args.last
    elif not args.follow and not args.since:
        req.number = 20  # hubble observe's default
    if args.since:
        req.since.CopyFrom(parse_time("--since", args.since, now))
    if args.until:
        req.until.CopyFrom(parse_time("--until", args.until, now))
    common = _common(args)
    pair = _Pair(pb.FlowFilter(), pb.FlowFilter())
    _sided(args, pair)
    pair.src.MergeFrom(common)
    pair.dst.MergeFrom(common)
    if pair.symmetric:
        req.whitelist.extend([pair.src, pair.dst])
    elif pair.src.ListFields():
        req.whitelist.append(pair.src)
    return req


def _target(args: argparse.Namespace) -> str:
    from axoneme.lab.topology import LAB_DIR, relay_socket

    if args.server:
        if not args.server.startswith("unix:"):
            raise CLIError(f"--server: {args.server!r} must be unix:PATH")
        return str(args.server)
    if args.node:
        path = LAB_DIR / "nodes" / args.node / "hubble.sock"
        if not path.is_socket():
            raise CLIError(f"--node: no observer socket at {path} (is node {args.node} up?)")
        return f"unix:{path}"
    path = relay_socket()
    if not Path(path).is_socket():
        raise CLIError(f"no relay at {path}: is the lab up? (or use --node NAME)")
    return f"unix:{path}"


def _stub(target: str, timeout: float) -> tuple[grpc.Channel, pbg.ObserverStub]:
    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        raise CLIError(f"cannot reach the observer at {target}") from None
    return channel, pbg.ObserverStub(channel)  # type: ignore[no-untyped-call]


def _rpc_error(exc: grpc.RpcError, target: str) -> CLIError:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return CLIError(f"invalid request: {details}")
    return CLIError(f"observer at {target}: {details}")


def stream(target: str, req: pb.GetFlowsRequest, timeout: float) -> Iterator[pb.GetFlowsResponse]:
    channel, stub = _stub(target, timeout)
    try:
        yield from stub.GetFlows(req)
    except grpc.RpcError as exc:
        raise _rpc_error(exc, target) from None
    finally:
        channel.close()


def status_text(target: str, timeout: float) -> str:
    channel, stub = _stub(target, timeout)
    try:
        s = stub.ServerStatus(pb.ServerStatusRequest(), timeout=timeout)
    except grpc.RpcError as exc:
        raise _rpc_error(exc, target) from None
    finally:
        channel.close()
    pct = 100.0 * s.num_flows / s.max_flows if s.max_flows else 0.0
    lines = [
        f"Healthcheck (via {target}): Ok",
        f"Current/Max Flows: {s.num_flows}/{s.max_flows} ({pct:.2f}%)",
        f"Flows/s: {s.flows_rate:.2f}",
        f"Seen flows: {s.seen_flows}",
        f"Lost events: ring buffer {s.lost_ring_buffer}, observer queue {s.lost_events_queue}, "
        f"client streams {s.lost_client_streams}",
    ]
    if s.HasField("num_connected_nodes"):
        total = s.num_connected_nodes.value + s.num_unavailable_nodes.value
        lines.append(f"Connected Nodes: {s.num_connected_nodes.value}/{total}")
    if s.unavailable_nodes:
        lines.append(f"Unavailable Nodes: {', '.join(s.unavailable_nodes)}")
    return "\n".join(lines)


def nodes_text(target: str, timeout: float) -> str:
    channel, stub = _stub(target, timeout)
    try:
        nodes = stub.GetNodes(pb.GetNodesRequest(), timeout=timeout).nodes
    except grpc.RpcError as exc:
        raise _rpc_error(exc, target) from None
    finally:
        channel.close()
    rows = [f"{'NAME':<16} {'STATUS':<18} {'AGE':>8} {'CURRENT/MAX-FLOWS':>20}  SEEN"]
    for n in nodes:
        age = f"{n.uptime_ns / 1e9:.0f}s" if n.uptime_ns else "-"
        rows.append(
            f"{n.name:<16} {pb.NodeState.Name(n.state):<18} {age:>8} "
            f"{f'{n.num_flows}/{n.max_flows}':>20}  {n.seen_flows}"
        )
    return "\n".join(rows)


def hubble_line(agent_socket: Path, timeout: float = 2.0) -> str:
    """``axoneme status``'s Hubble line for the agent at ``agent_socket`` (its observer
    listens beside it, as ``hubble.sock``)."""
    target = f"unix:{agent_socket.parent / 'hubble.sock'}"
    try:
        channel, stub = _stub(target, timeout)
    except CLIError:
        return "Hubble:     Unavailable (no observer socket answers)"
    try:
        s = stub.ServerStatus(pb.ServerStatusRequest(), timeout=timeout)
    except grpc.RpcError as exc:
        return f"Hubble:     Failure   {_rpc_error(exc, target)}"
    finally:
        channel.close()
    pct = 100.0 * s.num_flows / s.max_flows if s.max_flows else 0.0
    lost = s.lost_ring_buffer + s.lost_events_queue + s.lost_client_streams
    return (
        f"Hubble:     Ok   Current/Max Flows: {s.num_flows}/{s.max_flows} ({pct:.2f}%), "
        f"Flows/s: {s.flows_rate:.2f}, Lost: {lost}"
    )


def run(args: argparse.Namespace) -> int:
    req = build_request(args)  # bad flags are reported before anything is contacted
    target = _target(args)
    if args.what == "status":
        print(status_text(target, args.timeout))
        return 0
    if args.what == "nodes":
        print(nodes_text(target, args.timeout))
        return 0
    try:
        _print_flows(args, target, req)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other CLIs do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _print_flows(args: argparse.Namespace, target: str, req: pb.GetFlowsRequest) -> None:
    if args.output == "table":
        print(printer.TABLE_HEADER, flush=True)
    for resp in stream(target, req, args.timeout):
        if args.output == "json":
            line = printer.json_line(resp)
        elif args.output == "dict":
            line = printer.dict_block(resp)
        elif args.output == "table":
            line = printer.table_row(resp)
        else:
            line = printer.compact(resp, args.print_node_name)
        print(line, flush=True)
