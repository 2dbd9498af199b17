"""``axoneme observe`` flags -> GetFlowsRequest, bad flags, and the printed forms."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest
from observer_helpers import directory, records

from axoneme.cli import observe
from axoneme.cli.context import CLIError
from axoneme.observer import printer
from axoneme.observer.core import response
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.observer.ring import FlowRing

NOW = 1_800_000_000.0


def args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    observe.add_parser(sub)
    return p.parse_args(["observe", *argv])


def request(*argv: str) -> pb.GetFlowsRequest:
    return observe.build_request(args(*argv), now=NOW)


def test_defaults_like_hubble() -> None:
    assert request().number == 20 and not request().follow
    req = request("--follow")
    assert (req.number, req.follow) == (0, True)
    assert request("--last", "5", "--follow").number == 5
    req = request("--first", "3")
    assert (req.number, req.first) == (3, True)


def test_directional_flags_go_into_one_filter() -> None:
    req = request("--from-pod", "demo/client", "--to-port", "80", "--verdict", "dropped")
    (flt,) = req.whitelist
    assert list(flt.source_pod) == ["demo/client"]
    assert list(flt.destination_port) == ["80"]
    assert list(flt.verdict) == [pb.DROPPED]


def test_symmetric_flags_make_two_filters() -> None:
    req = request("--pod", "web", "-n", "demo", "--protocol", "TCP", "-t", "trace:to-endpoint")
    src, dst = req.whitelist
    assert list(src.source_pod) == ["demo/web"] and not src.destination_pod
    assert list(dst.destination_pod) == ["demo/web"] and not dst.source_pod
    for flt in (src, dst):
        assert list(flt.protocol) == ["tcp"]
        assert [(e.type, e.match_sub_type, e.sub_type) for e in flt.event_type] == [(4, True, 0)]


def test_namespace_does_not_widen_a_pod_filter() -> None:
    src, dst = request("-n", "obs", "--from-pod", "obs/other").whitelist
    assert list(src.source_pod) == ["obs/other"]
    assert list(dst.source_pod) == ["obs/other"] and list(dst.destination_pod) == ["obs/"]


def test_pod_without_namespace_defaults_to_default() -> None:
    (flt,) = request("--to-pod", "web").whitelist
    assert list(flt.destination_pod) == ["default/web"]


def test_times() -> None:
    req = request("--since", "90s", "--until", "2027-01-15T08:00:00Z")
    assert req.since.seconds == int(NOW - 90)
    assert req.until.seconds == int(dt.datetime(2027, 1, 15, 8, tzinfo=dt.UTC).timestamp())
    assert req.number == 0  # --since alone: everything since


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--last", "0"], "--last: 0 must be at least 1"),
        (["--first", "2", "--last", "3"], "--first: cannot be combined with --last"),
        (["--first", "2", "--follow"], "--first: cannot be combined with --follow"),
        (["--port", "http"], "--port: 'http' is not a port"),
        (["--to-port", "70000"], "--to-port: '70000' is not a port"),
        (["--identity", "web"], "--identity: 'web' is not a numeric identity"),
        (["--verdict", "allowed"], "--verdict: 'allowed' is not one of"),
        (["--protocol", "gre"], "--protocol: 'gre' is not one of"),
        (["--type", "l7"], "--type: 'l7' is not one of"),
        (["--type", "drop:x"], "--type: 'drop:x': only trace has subtypes"),
        (["--since", "later"], "--since: 'later' is neither"),
        (["--from-pod", "/web"], "--from-pod: '/web' has an empty namespace"),
    ],
)
def test_bad_flags_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(CLIError) as err:
        request(*argv)
    assert str(err.value).startswith(message)


def test_printed_forms() -> None:
    ring = FlowRing(8, "node1", 0)
    ring.set_resolver(directory())
    reply_record = dict(
        type=3, verdict=1, reason=0, dir=0, ct_state=2, tcp_flags=0x12, saddr="10.42.2.3",
        sport=80, src_identity=400, daddr="10.42.1.2", dport=40000, dst_identity=300,
    )  # fmt: skip
    ring.extend(records({}, reply_record))
    drop, reply = (response(f) for f in ring.flows(0, 2))
    line = printer.compact(drop, node_name=True)
    assert line.endswith(
        "[node1]: demo/client:40000 (ID:300) -> demo/web-2:80 (ID:400) "
        "Policy denied DROPPED (TCP Flags: SYN)"
    )
    assert printer.compact(reply).endswith(
        ": demo/client:40000 (ID:300) <- demo/web-2:80 (ID:400) to-endpoint FORWARDED "
        "(TCP Flags: SYN, ACK)"
    )
    block = printer.dict_block(drop)
    assert "     SOURCE: demo/client:40000 (ID:300)" in block and "VERDICT: DROPPED" in block
    assert printer.table_row(drop).split()[3] == "node1"
    assert '"dropReasonDesc": "POLICY_DENIED"' in printer.json_line(drop)
    lost = pb.GetFlowsResponse(
        lost_events=pb.LostEvent(source=pb.HUBBLE_RING_BUFFER, num_events_lost=6),
        node_name="node1",
    )
    assert printer.compact(lost) == "EVENTS LOST: HUBBLE_RING_BUFFER 6 (node1)"
