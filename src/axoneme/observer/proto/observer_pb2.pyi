import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import wrappers_pb2 as _wrappers_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNKNOWN: _ClassVar[Verdict]
    FORWARDED: _ClassVar[Verdict]
    DROPPED: _ClassVar[Verdict]
    ERROR: _ClassVar[Verdict]
    AUDIT: _ClassVar[Verdict]

class FlowType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_TYPE: _ClassVar[FlowType]
    L3_L4: _ClassVar[FlowType]
    L7: _ClassVar[FlowType]

class TrafficDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAFFIC_DIRECTION_UNKNOWN: _ClassVar[TrafficDirection]
    INGRESS: _ClassVar[TrafficDirection]
    EGRESS: _ClassVar[TrafficDirection]

class TraceObservationPoint(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_POINT: _ClassVar[TraceObservationPoint]
    TO_PROXY: _ClassVar[TraceObservationPoint]
    TO_HOST: _ClassVar[TraceObservationPoint]
    TO_STACK: _ClassVar[TraceObservationPoint]
    TO_OVERLAY: _ClassVar[TraceObservationPoint]
    FROM_ENDPOINT: _ClassVar[TraceObservationPoint]
    FROM_PROXY: _ClassVar[TraceObservationPoint]
    FROM_HOST: _ClassVar[TraceObservationPoint]
    FROM_STACK: _ClassVar[TraceObservationPoint]
    FROM_OVERLAY: _ClassVar[TraceObservationPoint]
    FROM_NETWORK: _ClassVar[TraceObservationPoint]
    TO_NETWORK: _ClassVar[TraceObservationPoint]
    TO_ENDPOINT: _ClassVar[TraceObservationPoint]

class IPVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IP_NOT_USED: _ClassVar[IPVersion]
    IPv4: _ClassVar[IPVersion]
    IPv6: _ClassVar[IPVersion]

class NodeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_NODE_STATE: _ClassVar[NodeState]
    NODE_CONNECTED: _ClassVar[NodeState]
    NODE_UNAVAILABLE: _ClassVar[NodeState]
    NODE_GONE: _ClassVar[NodeState]
    NODE_ERROR: _ClassVar[NodeState]

class LostEventSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN_LOST_EVENT_SOURCE: _ClassVar[LostEventSource]
    PERF_EVENT_RING_BUFFER: _ClassVar[LostEventSource]
    OBSERVER_EVENTS_QUEUE: _ClassVar[LostEventSource]
    HUBBLE_RING_BUFFER: _ClassVar[LostEventSource]
VERDICT_UNKNOWN: Verdict
FORWARDED: Verdict
DROPPED: Verdict
ERROR: Verdict
AUDIT: Verdict
UNKNOWN_TYPE: FlowType
L3_L4: FlowType
L7: FlowType
TRAFFIC_DIRECTION_UNKNOWN: TrafficDirection
INGRESS: TrafficDirection
EGRESS: TrafficDirection
UNKNOWN_POINT: TraceObservationPoint
TO_PROXY: TraceObservationPoint
TO_HOST: TraceObservationPoint
TO_STACK: TraceObservationPoint
TO_OVERLAY: TraceObservationPoint
FROM_ENDPOINT: TraceObservationPoint
FROM_PROXY: TraceObservationPoint
FROM_HOST: TraceObservationPoint
FROM_STACK: TraceObservationPoint
FROM_OVERLAY: TraceObservationPoint
FROM_NETWORK: TraceObservationPoint
TO_NETWORK: TraceObservationPoint
TO_ENDPOINT: TraceObservationPoint
IP_NOT_USED: IPVersion
IPv4: IPVersion
IPv6: IPVersion
UNKNOWN_NODE_STATE: NodeState
NODE_CONNECTED: NodeState
NODE_UNAVAILABLE: NodeState
NODE_GONE: NodeState
NODE_ERROR: NodeState
UNKNOWN_LOST_EVENT_SOURCE: LostEventSource
PERF_EVENT_RING_BUFFER: LostEventSource
OBSERVER_EVENTS_QUEUE: LostEventSource
HUBBLE_RING_BUFFER: LostEventSource

class Ethernet(_message.Message):
    __slots__ = ("source", "destination")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    source: str
    destination: str
    def __init__(self, source: _Optional[str] = ..., destination: _Optional[str] = ...) -> None: ...

class IP(_message.Message):
    __slots__ = ("source", "destination", "ipVersion")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    IPVERSION_FIELD_NUMBER: _ClassVar[int]
    source: str
    destination: str
    ipVersion: IPVersion
    def __init__(self, source: _Optional[str] = ..., destination: _Optional[str] = ..., ipVersion: _Optional[_Union[IPVersion, str]] = ...) -> None: ...

class TCPFlags(_message.Message):
    __slots__ = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")
    FIN_FIELD_NUMBER: _ClassVar[int]
    SYN_FIELD_NUMBER: _ClassVar[int]
    RST_FIELD_NUMBER: _ClassVar[int]
    PSH_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    URG_FIELD_NUMBER: _ClassVar[int]
    ECE_FIELD_NUMBER: _ClassVar[int]
    CWR_FIELD_NUMBER: _ClassVar[int]
    NS_FIELD_NUMBER: _ClassVar[int]
    FIN: bool
    SYN: bool
    RST: bool
    PSH: bool
    ACK: bool
    URG: bool
    ECE: bool
    CWR: bool
    NS: bool
    def __init__(self, FIN: _Optional[bool] = ..., SYN: _Optional[bool] = ..., RST: _Optional[bool] = ..., PSH: _Optional[bool] = ..., ACK: _Optional[bool] = ..., URG: _Optional[bool] = ..., ECE: _Optional[bool] = ..., CWR: _Optional[bool] = ..., NS: _Optional[bool] = ...) -> None: ...

class TCP(_message.Message):
    __slots__ = ("source_port", "destination_port", "flags")
    SOURCE_PORT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_PORT_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    source_port: int
    destination_port: int
    flags: TCPFlags
    def __init__(self, source_port: _Optional[int] = ..., destination_port: _Optional[int] = ..., flags: _Optional[_Union[TCPFlags, _Mapping]] = ...) -> None: ...

class UDP(_message.Message):
    __slots__ = ("source_port", "destination_port")
    SOURCE_PORT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_PORT_FIELD_NUMBER: _ClassVar[int]
    source_port: int
    destination_port: int
    def __init__(self, source_port: _Optional[int] = ..., destination_port: _Optional[int] = ...) -> None: ...

class SCTP(_message.Message):
    __slots__ = ("source_port", "destination_port")
    SOURCE_PORT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_PORT_FIELD_NUMBER: _ClassVar[int]
    source_port: int
    destination_port: int
    def __init__(self, source_port: _Optional[int] = ..., destination_port: _Optional[int] = ...) -> None: ...

class ICMPv4(_message.Message):
    __slots__ = ("type", "code")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    type: int
    code: int
    def __init__(self, type: _Optional[int] = ..., code: _Optional[int] = ...) -> None: ...

class Layer4(_message.Message):
    __slots__ = ("TCP", "UDP", "ICMPv4", "SCTP")
    TCP_FIELD_NUMBER: _ClassVar[int]
    UDP_FIELD_NUMBER: _ClassVar[int]
    ICMPV4_FIELD_NUMBER: _ClassVar[int]
    SCTP_FIELD_NUMBER: _ClassVar[int]
    TCP: TCP
    UDP: UDP
    ICMPv4: ICMPv4
    SCTP: SCTP
    def __init__(self, TCP: _Optional[_Union[TCP, _Mapping]] = ..., UDP: _Optional[_Union[UDP, _Mapping]] = ..., ICMPv4: _Optional[_Union[ICMPv4, _Mapping]] = ..., SCTP: _Optional[_Union[SCTP, _Mapping]] = ...) -> None: ...

class Workload(_message.Message):
    __slots__ = ("name", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("ID", "identity", "namespace", "labels", "pod_name", "workloads", "cluster_name")
    ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    ID: int
    identity: int
    namespace: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    pod_name: str
    workloads: _containers.RepeatedCompositeFieldContainer[Workload]
    cluster_name: str
    def __init__(self, ID: _Optional[int] = ..., identity: _Optional[int] = ..., namespace: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., pod_name: _Optional[str] = ..., workloads: _Optional[_Iterable[_Union[Workload, _Mapping]]] = ..., cluster_name: _Optional[str] = ...) -> None: ...

class Service(_message.Message):
    __slots__ = ("name", "namespace")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class CiliumEventType(_message.Message):
    __slots__ = ("type", "sub_type")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SUB_TYPE_FIELD_NUMBER: _ClassVar[int]
    type: int
    sub_type: int
    def __init__(self, type: _Optional[int] = ..., sub_type: _Optional[int] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ("time", "uuid", "verdict", "drop_reason", "ethernet", "IP", "l4", "source", "destination", "Type", "node_name", "event_type", "source_service", "destination_service", "traffic_direction", "policy_match_type", "trace_observation_point", "drop_reason_desc", "is_reply", "interface_index", "policy_set", "Summary")
    TIME_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_FIELD_NUMBER: _ClassVar[int]
    ETHERNET_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    L4_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_SERVICE_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    POLICY_MATCH_TYPE_FIELD_NUMBER: _ClassVar[int]
    TRACE_OBSERVATION_POINT_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_DESC_FIELD_NUMBER: _ClassVar[int]
    IS_REPLY_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_INDEX_FIELD_NUMBER: _ClassVar[int]
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    uuid: str
    verdict: Verdict
    drop_reason: int
    ethernet: Ethernet
    IP: IP
    l4: Layer4
    source: Endpoint
    destination: Endpoint
    Type: FlowType
    node_name: str
    event_type: CiliumEventType
    source_service: Service
    destination_service: Service
    traffic_direction: TrafficDirection
    policy_match_type: int
    trace_observation_point: TraceObservationPoint
    drop_reason_desc: str
    is_reply: _wrappers_pb2.BoolValue
    interface_index: int
    policy_set: int
    Summary: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uuid: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., drop_reason: _Optional[int] = ..., ethernet: _Optional[_Union[Ethernet, _Mapping]] = ..., IP: _Optional[_Union[IP, _Mapping]] = ..., l4: _Optional[_Union[Layer4, _Mapping]] = ..., source: _Optional[_Union[Endpoint, _Mapping]] = ..., destination: _Optional[_Union[Endpoint, _Mapping]] = ..., Type: _Optional[_Union[FlowType, str]] = ..., node_name: _Optional[str] = ..., event_type: _Optional[_Union[CiliumEventType, _Mapping]] = ..., source_service: _Optional[_Union[Service, _Mapping]] = ..., destination_service: _Optional[_Union[Service, _Mapping]] = ..., traffic_direction: _Optional[_Union[TrafficDirection, str]] = ..., policy_match_type: _Optional[int] = ..., trace_observation_point: _Optional[_Union[TraceObservationPoint, str]] = ..., drop_reason_desc: _Optional[str] = ..., is_reply: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., interface_index: _Optional[int] = ..., policy_set: _Optional[int] = ..., Summary: _Optional[str] = ...) -> None: ...

class EventTypeFilter(_message.Message):
    __slots__ = ("type", "match_sub_type", "sub_type")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MATCH_SUB_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUB_TYPE_FIELD_NUMBER: _ClassVar[int]
    type: int
    match_sub_type: bool
    sub_type: int
    def __init__(self, type: _Optional[int] = ..., match_sub_type: _Optional[bool] = ..., sub_type: _Optional[int] = ...) -> None: ...

class FlowFilter(_message.Message):
    __slots__ = ("uuid", "source_ip", "source_pod", "source_label", "source_service", "source_workload", "source_identity", "destination_ip", "destination_pod", "destination_label", "destination_service", "destination_workload", "destination_identity", "traffic_direction", "verdict", "drop_reason_desc", "event_type", "protocol", "source_port", "destination_port", "reply", "tcp_flags", "node_name", "ip_version")
    UUID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    SOURCE_POD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LABEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_IP_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_POD_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_LABEL_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_SERVICE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_DESC_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PORT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_PORT_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    TCP_FLAGS_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    uuid: _containers.RepeatedScalarFieldContainer[str]
    source_ip: _containers.RepeatedScalarFieldContainer[str]
    source_pod: _containers.RepeatedScalarFieldContainer[str]
    source_label: _containers.RepeatedScalarFieldContainer[str]
    source_service: _containers.RepeatedScalarFieldContainer[str]
    source_workload: _containers.RepeatedCompositeFieldContainer[Workload]
    source_identity: _containers.RepeatedScalarFieldContainer[int]
    destination_ip: _containers.RepeatedScalarFieldContainer[str]
    destination_pod: _containers.RepeatedScalarFieldContainer[str]
    destination_label: _containers.RepeatedScalarFieldContainer[str]
    destination_service: _containers.RepeatedScalarFieldContainer[str]
    destination_workload: _containers.RepeatedCompositeFieldContainer[Workload]
    destination_identity: _containers.RepeatedScalarFieldContainer[int]
    traffic_direction: _containers.RepeatedScalarFieldContainer[TrafficDirection]
    verdict: _containers.RepeatedScalarFieldContainer[Verdict]
    drop_reason_desc: _containers.RepeatedScalarFieldContainer[str]
    event_type: _containers.RepeatedCompositeFieldContainer[EventTypeFilter]
    protocol: _containers.RepeatedScalarFieldContainer[str]
    source_port: _containers.RepeatedScalarFieldContainer[str]
    destination_port: _containers.RepeatedScalarFieldContainer[str]
    reply: _containers.RepeatedScalarFieldContainer[bool]
    tcp_flags: _containers.RepeatedCompositeFieldContainer[TCPFlags]
    node_name: _containers.RepeatedScalarFieldContainer[str]
    ip_version: _containers.RepeatedScalarFieldContainer[IPVersion]
    def __init__(self, uuid: _Optional[_Iterable[str]] = ..., source_ip: _Optional[_Iterable[str]] = ..., source_pod: _Optional[_Iterable[str]] = ..., source_label: _Optional[_Iterable[str]] = ..., source_service: _Optional[_Iterable[str]] = ..., source_workload: _Optional[_Iterable[_Union[Workload, _Mapping]]] = ..., source_identity: _Optional[_Iterable[int]] = ..., destination_ip: _Optional[_Iterable[str]] = ..., destination_pod: _Optional[_Iterable[str]] = ..., destination_label: _Optional[_Iterable[str]] = ..., destination_service: _Optional[_Iterable[str]] = ..., destination_workload: _Optional[_Iterable[_Union[Workload, _Mapping]]] = ..., destination_identity: _Optional[_Iterable[int]] = ..., traffic_direction: _Optional[_Iterable[_Union[TrafficDirection, str]]] = ..., verdict: _Optional[_Iterable[_Union[Verdict, str]]] = ..., drop_reason_desc: _Optional[_Iterable[str]] = ..., event_type: _Optional[_Iterable[_Union[EventTypeFilter, _Mapping]]] = ..., protocol: _Optional[_Iterable[str]] = ..., source_port: _Optional[_Iterable[str]] = ..., destination_port: _Optional[_Iterable[str]] = ..., reply: _Optional[_Iterable[bool]] = ..., tcp_flags: _Optional[_Iterable[_Union[TCPFlags, _Mapping]]] = ..., node_name: _Optional[_Iterable[str]] = ..., ip_version: _Optional[_Iterable[_Union[IPVersion, str]]] = ...) -> None: ...

class GetFlowsRequest(_message.Message):
    __slots__ = ("number", "first", "follow", "blacklist", "whitelist", "since", "until")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    BLACKLIST_FIELD_NUMBER: _ClassVar[int]
    WHITELIST_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    number: int
    first: bool
    follow: bool
    blacklist: _containers.RepeatedCompositeFieldContainer[FlowFilter]
    whitelist: _containers.RepeatedCompositeFieldContainer[FlowFilter]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, number: _Optional[int] = ..., first: _Optional[bool] = ..., follow: _Optional[bool] = ..., blacklist: _Optional[_Iterable[_Union[FlowFilter, _Mapping]]] = ..., whitelist: _Optional[_Iterable[_Union[FlowFilter, _Mapping]]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NodeStatusEvent(_message.Message):
    __slots__ = ("state_change", "node_names", "message")
    STATE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    NODE_NAMES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state_change: NodeState
    node_names: _containers.RepeatedScalarFieldContainer[str]
    message: str
    def __init__(self, state_change: _Optional[_Union[NodeState, str]] = ..., node_names: _Optional[_Iterable[str]] = ..., message: _Optional[str] = ...) -> None: ...

class LostEvent(_message.Message):
    __slots__ = ("source", "num_events_lost")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NUM_EVENTS_LOST_FIELD_NUMBER: _ClassVar[int]
    source: LostEventSource
    num_events_lost: int
    def __init__(self, source: _Optional[_Union[LostEventSource, str]] = ..., num_events_lost: _Optional[int] = ...) -> None: ...

class GetFlowsResponse(_message.Message):
    __slots__ = ("flow", "node_status", "lost_events", "node_name", "time")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    NODE_STATUS_FIELD_NUMBER: _ClassVar[int]
    LOST_EVENTS_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    node_status: NodeStatusEvent
    lost_events: LostEvent
    node_name: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ..., node_status: _Optional[_Union[NodeStatusEvent, _Mapping]] = ..., lost_events: _Optional[_Union[LostEvent, _Mapping]] = ..., node_name: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetNodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Node(_message.Message):
    __slots__ = ("name", "version", "address", "state", "uptime_ns", "num_flows", "max_flows", "seen_flows")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    UPTIME_NS_FIELD_NUMBER: _ClassVar[int]
    NUM_FLOWS_FIELD_NUMBER: _ClassVar[int]
    MAX_FLOWS_FIELD_NUMBER: _ClassVar[int]
    SEEN_FLOWS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    address: str
    state: NodeState
    uptime_ns: int
    num_flows: int
    max_flows: int
    seen_flows: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., address: _Optional[str] = ..., state: _Optional[_Union[NodeState, str]] = ..., uptime_ns: _Optional[int] = ..., num_flows: _Optional[int] = ..., max_flows: _Optional[int] = ..., seen_flows: _Optional[int] = ...) -> None: ...

class GetNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

class GetNamespacesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Namespace(_message.Message):
    __slots__ = ("cluster", "namespace")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    namespace: str
    def __init__(self, cluster: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class GetNamespacesResponse(_message.Message):
    __slots__ = ("namespaces",)
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    namespaces: _containers.RepeatedCompositeFieldContainer[Namespace]
    def __init__(self, namespaces: _Optional[_Iterable[_Union[Namespace, _Mapping]]] = ...) -> None: ...

class ServerStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerStatusResponse(_message.Message):
    __slots__ = ("num_flows", "max_flows", "seen_flows", "uptime_ns", "num_connected_nodes", "num_unavailable_nodes", "unavailable_nodes", "version", "flows_rate", "lost_ring_buffer", "lost_events_queue", "lost_client_streams")
    NUM_FLOWS_FIELD_NUMBER: _ClassVar[int]
    MAX_FLOWS_FIELD_NUMBER: _ClassVar[int]
    SEEN_FLOWS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_NS_FIELD_NUMBER: _ClassVar[int]
    NUM_CONNECTED_NODES_FIELD_NUMBER: _ClassVar[int]
    NUM_UNAVAILABLE_NODES_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_NODES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FLOWS_RATE_FIELD_NUMBER: _ClassVar[int]
    LOST_RING_BUFFER_FIELD_NUMBER: _ClassVar[int]
    LOST_EVENTS_QUEUE_FIELD_NUMBER: _ClassVar[int]
    LOST_CLIENT_STREAMS_FIELD_NUMBER: _ClassVar[int]
    num_flows: int
    max_flows: int
    seen_flows: int
    uptime_ns: int
    num_connected_nodes: _wrappers_pb2.UInt32Value
    num_unavailable_nodes: _wrappers_pb2.UInt32Value
    unavailable_nodes: _containers.RepeatedScalarFieldContainer[str]
    version: str
    flows_rate: float
    lost_ring_buffer: int
    lost_events_queue: int
    lost_client_streams: int
    def __init__(self, num_flows: _Optional[int] = ..., max_flows: _Optional[int] = ..., seen_flows: _Optional[int] = ..., uptime_ns: _Optional[int] = ..., num_connected_nodes: _Optional[_Union[_wrappers_pb2.UInt32Value, _Mapping]] = ..., num_unavailable_nodes: _Optional[_Union[_wrappers_pb2.UInt32Value, _Mapping]] = ..., unavailable_nodes: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., flows_rate: _Optional[float] = ..., lost_ring_buffer: _Optional[int] = ..., lost_events_queue: _Optional[int] = ..., lost_client_streams: _Optional[int] = ...) -> None: ...
