"""Flows for the UI tests."""

from __future__ import annotations

from axoneme.observer.proto import observer_pb2 as pb


def pod(ns: str, name: str, app: str = "", identity: int = 300) -> pb.Endpoint:
    ep = pb.Endpoint(namespace=ns, pod_name=name, identity=identity)
    if app:
        ep.labels.append(f"k8s:app={app}")
    return ep


def flow(
    src: pb.Endpoint,
    dst: pb.Endpoint,
    verdict: int = 1,
    port: int = 80,
    reply: bool | None = False,
    t: int = 100,
) -> pb.GetFlowsResponse:
    f = pb.Flow(verdict=verdict, source=src, destination=dst, node_name="node2")
    f.time.seconds = t
    f.IP.source, f.IP.destination = "10.42.1.2", "10.42.2.3"
    f.l4.TCP.destination_port = port
    f.l4.TCP.flags.SYN = True
    f.event_type.type = 9
    if verdict == 2:
        f.drop_reason_desc = "POLICY_DENIED"
    if reply is not None:
        f.is_reply.value = reply
    return pb.GetFlowsResponse(flow=f, node_name="node2")
