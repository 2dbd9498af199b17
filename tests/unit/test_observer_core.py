"""The observer: history selection, following, loss accounting, and the gRPC service."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from observer_helpers import directory, records
from prometheus_client import CollectorRegistry

from axoneme.observer.core import Observer, parse_request
from axoneme.observer.filters import FilterError
from axoneme.observer.metrics import FlowMetrics
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.observer.proto import observer_pb2_grpc as pbg
from axoneme.observer.server import NodeBackend, start_server


def observer(capacity: int = 16, registry: CollectorRegistry | None = None) -> Observer:
    obs = Observer("node1", FlowMetrics(registry) if registry else None, capacity)
    obs.ring.mono_to_wall_ns = 0  # times in the records are the flows' times
    d = directory()
    obs.set_directory_source(lambda: d, lambda: 1)
    return obs


def ports(obs: Observer, **req: object) -> list[int]:
    query = parse_request(pb.GetFlowsRequest(**req))  # type: ignore[arg-type]
    return [f.source_port for f in obs.history(query)]


def test_history_number_first_since_until() -> None:
    obs = observer(capacity=8)
    obs.ingest(records(*[dict(sport=i, ts_ns=i * 10) for i in range(1, 11)]))
    assert ports(obs) == [3, 4, 5, 6, 7, 8, 9, 10]  # the ring holds the last 8
    assert ports(obs, number=3) == [8, 9, 10]
    assert ports(obs, number=3, first=True) == [3, 4, 5]
    assert ports(obs, since=Timestamp(nanos=50), until=Timestamp(nanos=70)) == [5, 6, 7]
    assert ports(obs, number=2, since=Timestamp(nanos=50), until=Timestamp(nanos=70)) == [6, 7]
    wl = [pb.FlowFilter(source_port=["4", "9"])]
    assert ports(obs, whitelist=wl) == [4, 9]
    assert ports(obs, blacklist=wl, number=2) == [8, 10]
    assert ports(obs, follow=True) == []  # number 0 with follow: live only


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (pb.GetFlowsRequest(first=True, follow=True, number=3), "first"),
        (pb.GetFlowsRequest(first=True), "number"),
        (pb.GetFlowsRequest(since=Timestamp(seconds=10), until=Timestamp(seconds=5)), "until"),
        (pb.GetFlowsRequest(whitelist=[pb.FlowFilter(source_ip=["x"])]),
         "whitelist[0].source_ip[0]"),
    ],
)  # fmt: skip
def test_bad_requests_name_the_field(req: pb.GetFlowsRequest, field: str) -> None:
    with pytest.raises(FilterError) as err:
        parse_request(req)
    assert err.value.field == field


def test_follow_reports_what_a_slow_reader_lost() -> None:
    async def scenario() -> list[object]:
        obs = observer(capacity=4)
        query = parse_request(pb.GetFlowsRequest(follow=True))
        stream = obs.follow(query, obs.ring.head)
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        obs.ingest(records(dict(sport=1)))
        got: list[object] = [await first]
        obs.ingest(records(*[dict(sport=i) for i in range(2, 12)]))  # laps the reader
        got += [await anext(stream) for _ in range(5)]
        return [g if isinstance(g, int) else g.source_port for g in got]  # type: ignore[attr-defined]

    # After flow 1 the reader wanted flow 2; the ring holds 8-11: 6 lost.
    assert asyncio.run(scenario()) == [1, 6, 8, 9, 10, 11]


def test_offer_drops_and_counts_beyond_max_pending() -> None:
    async def scenario() -> Observer:
        obs = observer()
        obs.max_pending = 3
        loop = asyncio.get_running_loop()
        assert obs.offer(loop, records({}, {}))
        assert not obs.offer(loop, records({}, {}))  # 4 > 3 pending: dropped
        await asyncio.sleep(0.01)
        assert obs.offer(loop, records({}, {}, {}))  # drained: room again
        await asyncio.sleep(0.01)
        return obs

    obs = asyncio.run(scenario())
    assert (obs.seen, obs.lost_queue) == (5, 2)


def test_metrics_count_batches() -> None:
    reg = CollectorRegistry()
    obs = observer(registry=reg)
    obs.ingest(
        records(
            dict(type=2, verdict=2, reason=133, cookie=0, dir=0),  # policy verdict, denied
            dict(type=1, verdict=2, reason=133, tcp_flags=2),  # its drop
            dict(type=3, verdict=1, reason=0, tcp_flags=0x12, ct_state=2, dport=40000),
            dict(type=2, verdict=1, reason=0, cookie=5, dir=1, proto=17, tcp_flags=0),
            dict(type=3, verdict=1, reason=0, proto=17, dport=53, tcp_flags=0),
        )
    )

    def value(name: str, **labels: str) -> float:
        got = reg.get_sample_value(name, labels)
        return 0.0 if got is None else got

    assert value("hubble_flows_processed_total", type="Drop", subtype="", verdict="DROPPED") == 1
    assert value(
        "hubble_flows_processed_total", type="Trace", subtype="from-endpoint", verdict="FORWARDED"
    ) == 2  # fmt: skip
    assert value("hubble_drop_total", reason="POLICY_DENIED", protocol="TCP") == 1
    assert value("hubble_tcp_flags_total", flag="SYN", family="IPv4") == 1
    assert value("hubble_tcp_flags_total", flag="SYN-ACK", family="IPv4") == 1
    assert value("hubble_port_distribution_total", protocol="TCP", port="80") == 1
    assert value("hubble_port_distribution_total", protocol="UDP", port="53") == 1
    assert value("hubble_port_distribution_total", protocol="TCP", port="40000") == 0  # a reply
    assert value("hubble_policy_verdicts_total", direction="ingress", match="none",
                 action="dropped") == 1  # fmt: skip
    assert value("hubble_policy_verdicts_total", direction="egress", match="l3-l4",
                 action="forwarded") == 1  # fmt: skip
    assert value("hubble_lost_events_total", source="perf_event_ring_buffer") == 0
    obs.add_lost_ring_buffer(7)
    assert value("hubble_lost_events_total", source="perf_event_ring_buffer") == 7


def test_grpc_service_end_to_end() -> None:
    async def scenario() -> None:
        obs = observer()
        obs.ingest(records(dict(sport=1), dict(sport=2, type=3, verdict=1, reason=0)))
        sock = Path(tempfile.mkdtemp()) / "hubble.sock"
        server = await start_server(NodeBackend(obs), sock)
        try:
            assert sock.stat().st_mode & 0o777 == 0o600
            async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
                stub = pbg.ObserverStub(channel)
                got = [r async for r in stub.GetFlows(pb.GetFlowsRequest(number=5))]
                assert [r.flow.l4.TCP.source_port for r in got] == [1, 2]
                assert [pb.Verdict.Name(r.flow.verdict) for r in got] == ["DROPPED", "FORWARDED"]
                assert got[0].flow.source.pod_name == "client" and got[0].node_name == "node1"
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    bad = pb.FlowFilter(destination_port=["99999"])
                    [r async for r in stub.GetFlows(pb.GetFlowsRequest(blacklist=[bad]))]
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert (err.value.details() or "").startswith("blacklist[0].destination_port[0]")
                status = await stub.ServerStatus(pb.ServerStatusRequest())
                assert (status.num_flows, status.max_flows, status.seen_flows) == (2, 16, 2)
                nodes = await stub.GetNodes(pb.GetNodesRequest())
                assert [(n.name, n.state) for n in nodes.nodes] == [("node1", pb.NODE_CONNECTED)]
                spaces = await stub.GetNamespaces(pb.GetNamespacesRequest())
                assert [n.namespace for n in spaces.namespaces] == ["demo"]
                # follow: a flow ingested later arrives on the open stream
                call = stub.GetFlows(pb.GetFlowsRequest(follow=True))
                await asyncio.sleep(0.1)
                obs.ingest(records(dict(sport=3)))
                live = await asyncio.wait_for(call.read(), 5)
                assert live.flow.l4.TCP.source_port == 3  # type: ignore[union-attr]
                call.cancel()
        finally:
            await server.stop(0)

    asyncio.run(scenario())


def test_empty_batches_are_ignored() -> None:
    obs = observer()
    obs.ingest(np.empty((0, 64), np.uint8))
    assert obs.seen == 0
