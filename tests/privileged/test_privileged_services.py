"""Services through the socket load balancer, on a 2-node lab with real TCP and UDP.

Clients are sockets created in a pod's (or node's) network namespace while
this test process sits in that node's cgroup, exactly as the pod's own
processes do: the node's socket LB translates them. Backends are the lab's
workload, whose HTTP answer names the pod that served it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from axoneme.datapath.linux import bpfsys
from axoneme.datapath.linux.lbmaps import SvcKey, SvcValue
from axoneme.kit import cgroup
from axoneme.kit.netns import socket_in
from axoneme.lab.control import read_state
from axoneme.lab.topology import (
    BPF_PIN_ROOT,
    CGROUP_ROOT,
    EXTERNAL_IP_RANGE,
    LB_IP_POOL,
    WORLD_IP,
    WORLD_NETNS,
    pod_netns,
)
from privileged.helpers import (
    apply,
    ax,
    manifest,
    namespace,
    pod_manifest,
    wait_for,
    wait_pods,
    world_http,
    world_udp,
)

pytestmark = [pytest.mark.lab]

NS = "svc-test"
# Chi-square critical value, 2 degrees of freedom (3 backends), p = 0.001.
CHI2_DF2_P001 = 13.82


def netns_of(pod: dict[str, Any]) -> str:
    m = pod["metadata"]
    return f"/run/netns/{pod_netns(m['namespace'], m['name'], m['uid'])}"


@contextlib.contextmanager
def on_node(node: str) -> Iterator[None]:
    """This process in the node's cgroup: its new sockets get the node's socket LB."""
    with cgroup.joined(CGROUP_ROOT / node):
        yield


def tcp(pod: dict[str, Any], ip: str, port: int, bind_port: int = 0) -> socket.socket:
    with on_node(pod["spec"]["nodeName"]):
        s = socket_in(netns_of(pod), socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(True)
    s.settimeout(1.5)
    # Close with RST: no TIME_WAIT, so a flow's source port can be reused at once.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        if bind_port:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((pod["status"]["podIP"], bind_port))
        s.connect((ip, port))
    except OSError:
        s.close()
        raise
    return s


def ask(s: socket.socket) -> str:
    """One HTTP request on a connection; the name of the pod that answered."""
    return str(answer(s)["name"])


def answer(s: socket.socket) -> dict[str, Any]:
    """One HTTP request on a connection; the workload's JSON answer (name, client)."""
    s.sendall(b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, "connection closed before a response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += s.recv(4096)
    return dict(json.loads(body[:length]))


def backend_of(client: dict[str, Any], ip: str, port: int, bind_port: int = 0) -> str:
    s = tcp(client, ip, port, bind_port)
    try:
        return ask(s)
    finally:
        s.close()


def lb_entry(node: str, ip: str, port: int, proto: int = socket.IPPROTO_TCP) -> SvcValue | None:
    with bpfsys.BpfMap.open_pinned(BPF_PIN_ROOT / node / "axo_lb_svc") as m:
        raw = m.lookup(SvcKey(ip, port, proto).pack())
    return SvcValue.unpack(raw) if raw is not None else None


def wait_active(
    ip: str, port: int, count: int, nodes: tuple[str, ...] = ("node1", "node2")
) -> None:
    def ready() -> bool:
        entries = [lb_entry(n, ip, port) for n in nodes]
        return all(e is not None and e.count == count for e in entries)

    wait_for(ready, 20, f"{ip}:{port} with {count} active backends on {nodes}")


def service(name: str, selector: dict[str, str] | None, **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", {})
    body: dict[str, Any] = {"ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec}
    if selector is not None:
        body["selector"] = selector
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations},
        "spec": body,
    }


def endpoint_slice(name: str, svc: str, endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def cluster_ip(name: str) -> str:
    items = json.loads(ax("get", "svc", "-n", NS, "-o", "json").stdout)["items"]
    return str(next(s for s in items if s["metadata"]["name"] == name)["spec"]["clusterIP"])


@pytest.fixture(scope="module")
def pods(lab: dict[str, Any]) -> dict[str, dict[str, Any]]:
    web = [(1, "node1"), (2, "node2"), (3, "node1")]
    apply(
        namespace(NS),
        *[
            pod_manifest(NS, f"web-{i}", node, {"app": "web", "pod": f"web-{i}"},
                         [(8080, "TCP"), (5353, "UDP")])
            for i, node in web
        ],
        pod_manifest(NS, "client", "node1", {"app": "client"}, []),
        pod_manifest(NS, "client2", "node2", {"app": "client"}, []),
    )  # fmt: skip
    return wait_pods(NS, {"web-1", "web-2", "web-3", "client", "client2"})


def test_cluster_ip_spreads_tcp_and_translates_udp(pods: dict[str, dict[str, Any]]) -> None:
    dns = {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}
    apply(
        service(
            "web", {"app": "web"}, ports=[{"name": "http", "port": 80, "targetPort": 8080}, dns]
        )
    )
    vip = cluster_ip("web")
    wait_active(vip, 80, 3)
    client = pods["client"]

    s = tcp(client, vip, 80)
    assert s.getpeername() == (vip, 80)  # the application sees the service
    s.close()

    n = 300
    counts = Counter(backend_of(client, vip, 80) for _ in range(n))
    assert set(counts) == {"web-1", "web-2", "web-3"}
    chi2 = sum((c - n / 3) ** 2 / (n / 3) for c in counts.values())
    assert chi2 < CHI2_DF2_P001, counts

    # From the other node's pod, and from a node itself.
    assert backend_of(pods["client2"], vip, 80).startswith("web-")
    node2 = {"metadata": {}, "spec": {"nodeName": "node2"}, "status": {}}
    with on_node("node2"):
        s = socket_in("/run/netns/axn-node2", socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(True)
    s.settimeout(3)
    s.connect((vip, 80))
    assert ask(s).startswith("web-")
    s.close()
    del node2

    # UDP: unconnected and connected; replies come from the service address.
    with on_node("node1"):
        u = socket_in(netns_of(client), socket.AF_INET, socket.SOCK_DGRAM)
        c = socket_in(netns_of(client), socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (u, c):
        sock.setblocking(True)
        sock.settimeout(3)
    u.sendto(b"ping-1", (vip, 53))
    data, peer = u.recvfrom(100)
    assert (data, peer) == (b"ping-1", (vip, 53))
    c.connect((vip, 53))
    c.send(b"ping-2")
    assert c.recv(100) == b"ping-2"
    assert c.getpeername() == (vip, 53)
    u.close()
    c.close()


def test_service_without_backends_refuses_at_once(pods: dict[str, dict[str, Any]]) -> None:
    dns = {"name": "dns", "port": 53, "protocol": "UDP"}
    apply(service("nobody", {"app": "nobody"}, ports=[{"name": "http", "port": 80}, dns]))
    vip = cluster_ip("nobody")
    wait_for(lambda: lb_entry("node1", vip, 80) is not None, 20, "the empty service")
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        tcp(pods["client"], vip, 80)
    assert time.monotonic() - started < 0.5
    with on_node("node1"):
        u = socket_in(netns_of(pods["client"]), socket.AF_INET, socket.SOCK_DGRAM)
    u.setblocking(True)
    with pytest.raises(OSError) as info:
        u.sendto(b"x", (vip, 53))
    assert info.value.errno == errno.ECONNREFUSED
    u.close()
    out = ax("probe", f"{NS}/client", f"{vip}:80/TCP", check=False)
    assert out.returncode == 1 and out.stdout.startswith("refused"), out.stdout


def test_hairpin_pod_reaches_itself_through_its_service(pods: dict[str, dict[str, Any]]) -> None:
    apply(service("only-web-1", {"pod": "web-1"}))
    vip = cluster_ip("only-web-1")
    wait_active(vip, 80, 1, ("node1",))
    assert backend_of(pods["web-1"], vip, 80) == "web-1"


def test_client_ip_affinity_until_timeout(pods: dict[str, dict[str, Any]]) -> None:
    apply(
        service(
            "sticky",
            {"app": "web"},
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 1}},
        )
    )
    vip = cluster_ip("sticky")
    wait_active(vip, 80, 3)
    assert len({backend_of(pods["client"], vip, 80) for _ in range(30)}) == 1
    # After each timeout a new choice is made: 8 rounds over 3 backends see at
    # least two of them unless the (1/3)^7 chance strikes.
    seen = set()
    for _ in range(8):
        time.sleep(1.2)
        seen.add(backend_of(pods["client"], vip, 80))
    assert len(seen) >= 2


def test_maglev_disruption_and_terminating_backends(pods: dict[str, dict[str, Any]]) -> None:
    ips = {n: pods[n]["status"]["podIP"] for n in ("web-1", "web-2", "web-3")}

    def eps(ready: tuple[str, ...], terminating: tuple[str, ...] = ()) -> dict[str, Any]:
        endpoints = [{"addresses": [ips[n]]} for n in ready]
        leaving = {"ready": False, "serving": True, "terminating": True}
        endpoints += [{"addresses": [ips[n]], "conditions": leaving} for n in terminating]
        return endpoint_slice("mag-1", "mag", endpoints)

    annotations = {"service.axoneme.io/lb-algorithm": "maglev"}
    apply(service("mag", None, annotations=annotations), eps(("web-1", "web-2", "web-3")))
    vip = cluster_ip("mag")
    wait_active(vip, 80, 3, ("node1",))
    entry = lb_entry("node1", vip, 80)
    assert entry is not None and entry.maglev_size == 16381
    client = pods["client"]
    flows = range(42000, 42150)
    first = {p: backend_of(client, vip, 80, p) for p in flows}
    assert set(first.values()) == {"web-1", "web-2", "web-3"}
    # Maglev is a function of the flow: the same flows land on the same backends.
    assert {p: backend_of(client, vip, 80, p) for p in flows} == first

    apply(eps(("web-1", "web-2")))
    wait_active(vip, 80, 2, ("node1",))
    after = {p: backend_of(client, vip, 80, p) for p in flows}
    stayed = [p for p in flows if first[p] != "web-3"]
    kept = sum(after[p] == first[p] for p in stayed)
    assert kept / len(stayed) >= 0.97, (kept, len(stayed))
    assert all(after[p] in ("web-1", "web-2") for p in flows)

    # A connection to web-2 stays up when web-2 starts terminating; new ones avoid it.
    port2 = next(p for p in flows if after[p] == "web-2")
    held = tcp(client, vip, 80, port2)
    assert ask(held) == "web-2"
    apply(eps(("web-1",), ("web-2",)))
    wait_active(vip, 80, 1, ("node1",))
    assert {backend_of(client, vip, 80, p) for p in flows} == {"web-1"}
    assert ask(held) == "web-2"
    held.close()
    # `service list` shows what the kernel holds, as `cilium service list` does.
    listing = ax("service", "list", "--node", "node1").stdout
    assert listing.splitlines()[0].split() == ["ID", "Frontend", "Service", "Type", "Backend"]
    assert f"1 => {ips['web-1']}:8080 (active)" in listing
    assert f"2 => {ips['web-2']}:8080 (terminating)" in listing
    assert f"{vip}:80" in listing
    assert "[ClusterIP, maglev]" in ax("bpf", "lb", "list", "--node", "node1").stdout


def test_services_survive_agent_kill_9(pods: dict[str, dict[str, Any]]) -> None:
    apply(service("durable", {"app": "web"}))
    vip = cluster_ip("durable")
    wait_active(vip, 80, 3, ("node1",))
    state = read_state()
    assert state is not None
    node1 = next(n for n in state["nodes"] if n["name"] == "node1")
    os.kill(node1["agentPid"], signal.SIGKILL)
    # While the agent is away the kernel keeps serving the service.
    assert backend_of(pods["client"], vip, 80).startswith("web-")

    def restarted() -> bool:
        s = read_state()
        return s is not None and any(
            n["name"] == "node1" and n["agentPid"] not in (None, node1["agentPid"])
            for n in s["nodes"]
        )

    wait_for(restarted, 30, "the agent on node1 to be restarted")
    # The new agent adopts the maps (same service id) and serves new services.
    before = lb_entry("node1", vip, 80)
    apply(service("after-restart", {"app": "web"}))
    vip2 = cluster_ip("after-restart")
    wait_active(vip2, 80, 3, ("node1",))
    assert lb_entry("node1", vip, 80) == before
    assert backend_of(pods["client"], vip2, 80).startswith("web-")


def test_policy_applies_to_the_translated_backend(pods: dict[str, dict[str, Any]]) -> None:
    """Socket LB hands the datapath the backend's address: web-2's ingress policy
    (deny all) drops exactly the connections the service sent to web-2."""
    apply(service("guarded", {"app": "web"}))
    vip = cluster_ip("guarded")
    wait_active(vip, 80, 3, ("node1",))
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny-web-2", "namespace": NS},
        "spec": {"podSelector": {"matchLabels": {"pod": "web-2"}}, "policyTypes": ["Ingress"]},
    }
    apply(deny)
    try:
        ax("policy", "wait")
        served: Counter[str] = Counter()
        for _ in range(30):
            try:
                s = tcp(pods["client"], vip, 80)
            except TimeoutError:
                served["(dropped)"] += 1
                continue
            served[ask(s)] += 1
            s.close()
        assert "web-2" not in served, served
        assert served["(dropped)"] > 0 and served["web-1"] + served["web-3"] > 0, served
    finally:
        ax("delete", "-f", "-", stdin=manifest(deny))


def probe(src: str, dst: str) -> str:
    out = ax("probe", "--timeout", "1", src, dst, check=False)
    return out.stdout.split()[0] if out.stdout else out.stderr


def test_to_services_lets_app1_reach_nginx_as_the_reference_expected(
    pods: dict[str, dict[str, Any]],
) -> None:
    """The reference document's toServices example: app1 may talk to service nginx
    (a Service with a selector, which Cilium 1.14 did not honour), and through a
    selector-less Service picked by its labels (k8sServiceSelector)."""
    ns = "svc-policy"
    apply(
        namespace(ns),
        pod_manifest(ns, "nginx", "node2", {"app": "nginx"}, [(8080, "TCP")]),
        pod_manifest(ns, "other", "node2", {"app": "other"}, [(8080, "TCP")]),
        pod_manifest(ns, "app1", "node1", {"app": "app1"}, []),
        pod_manifest(ns, "app2", "node1", {"app": "app2"}, []),
    )
    running = wait_pods(ns, {"nginx", "other", "app1", "app2"})
    nginx = {**service("nginx", {"app": "nginx"}), "metadata": {"name": "nginx", "namespace": ns}}
    ext = {
        **service("ext", None),
        "metadata": {"name": "ext", "namespace": ns, "labels": {"kind": "external"}},
    }
    ext_slice = endpoint_slice(
        "ext-1", "ext", [{"addresses": [running["other"]["status"]["podIP"]]}]
    )
    ext_slice["metadata"]["namespace"] = ns
    policy = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "l3-rule-allow-app1-to-nginx-svc", "namespace": ns},
        "spec": {
            "endpointSelector": {"matchLabels": {"app": "app1"}},
            "egress": [{"toServices": [{"k8sService": {"serviceName": "nginx", "namespace": ns}}]}],
        },
    }
    apply(nginx, ext, ext_slice, policy)
    ax("policy", "wait")
    items = json.loads(ax("get", "svc", "-n", ns, "-o", "json").stdout)["items"]
    vips = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in items}
    wait_active(vips["nginx"], 80, 1, ("node1",))
    other_ip = running["other"]["status"]["podIP"]
    assert probe(f"{ns}/app1", f"{vips['nginx']}:80/TCP") == "reachable"
    assert probe(f"{ns}/app2", f"{vips['nginx']}:80/TCP") == "reachable"
    assert probe(f"{ns}/app1", f"{other_ip}:8080/TCP") == "timeout"  # egress is default-deny
    assert probe(f"{ns}/app1", f"{vips['ext']}:80/TCP") == "timeout"
    external = {"matchLabels": {"kind": "external"}}
    by_labels = {
        **policy,
        "metadata": {"name": "app1-to-external-services", "namespace": ns},
        "spec": {
            "endpointSelector": {"matchLabels": {"app": "app1"}},
            "egress": [{"toServices": [{"k8sServiceSelector": {"selector": external}}]}],
        },
    }
    apply(by_labels)
    ax("policy", "wait")
    assert probe(f"{ns}/app1", f"{vips['ext']}:80/TCP") == "reachable"
    assert probe(f"{ns}/app1", f"{vips['nginx']}:80/TCP") == "reachable"
    ax("delete", "-f", "-", stdin=manifest(policy, by_labels))


def test_node_port_from_outside_snat_and_local(pods: dict[str, dict[str, Any]]) -> None:
    """NodePort from the world namespace: a backend on the dialled node sees the
    client's address; one on the other node is reached through SNAT to the node;
    externalTrafficPolicy: Local serves only where a backend runs."""
    node_ip = {n["name"]: n["ip"] for n in (read_state() or {})["nodes"]}
    udp = {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353, "nodePort": 30053}
    http = {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}
    apply(
        service("np", {"app": "web"}, type="NodePort", ports=[http, udp]),
        service(
            "np-local",
            {"pod": "web-2"},
            type="NodePort",
            externalTrafficPolicy="Local",
            ports=[{**http, "nodePort": 30081}],
        ),
    )
    wait_active(node_ip["node1"], 30080, 3, ("node1",))
    wait_active(node_ip["node2"], 30081, 1, ("node2",))
    on_node1 = {"web-1", "web-3"}
    seen = set()
    for _ in range(30):
        answer = world_http(node_ip["node1"], 30080)
        seen.add(answer["name"])
        client = answer["client"].rsplit(":", 1)[0]
        if answer["name"] in on_node1:
            assert client == WORLD_IP, answer  # no SNAT to a local backend
        else:
            assert client == node_ip["node1"], answer  # SNAT to reach another node
    assert seen == {"web-1", "web-2", "web-3"}
    assert world_http(node_ip["node2"], 30081)["client"].rsplit(":", 1)[0] == WORLD_IP
    with pytest.raises(ConnectionRefusedError):  # ICMP port unreachable from tc
        world_http(node_ip["node1"], 30081)  # no local backend on node1: refused
    assert world_udp(node_ip["node2"], 30053, b"np-udp") == (b"np-udp", (node_ip["node2"], 30053))
    # 4 KB datagrams travel as IPv4 fragments both ways: later fragments carry no
    # ports and must still follow their first to the same backend, and back.
    big = bytes(range(256)) * 16
    for i in range(8):  # a new source port each time: backends on both nodes
        payload = big[:-1] + bytes([i])
        assert world_udp(node_ip["node1"], 30053, payload) == (payload, (node_ip["node1"], 30053))


EXTERNAL_IP = str(ipaddress.ip_network(EXTERNAL_IP_RANGE).network_address + 10)
HOME = {"web-1": "node1", "web-2": "node2", "web-3": "node1"}  # the pods fixture's placement


def entry_node(dst: str, proto: str, sport: int, dport: int) -> str:
    """The node the world's multipath route sends this flow to, as its kernel decides."""
    out = subprocess.run(
        ["ip", "-n", WORLD_NETNS, "-j", "route", "get", dst, "from", WORLD_IP,
         "ipproto", proto, "sport", str(sport), "dport", str(dport)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    gateway = json.loads(out)[0]["gateway"]
    return next(n["name"] for n in (read_state() or {})["nodes"] if n["ip"] == gateway)


def service_json(name: str) -> dict[str, Any]:
    items = json.loads(ax("get", "svc", "-n", NS, "-o", "json").stdout)["items"]
    return dict(next(s for s in items if s["metadata"]["name"] == name))


def lb_ingress(name: str) -> str:
    """The address the lab's LoadBalancer IPAM gave a service."""

    def ingress() -> str:
        svc = service_json(name)
        ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress", [])
        return str(ingress[0]["ip"]) if ingress else ""

    return str(wait_for(ingress, 20, f"a LoadBalancer address for {name}"))


def test_load_balancer_and_external_ips_from_outside_and_pods(
    pods: dict[str, dict[str, Any]],
) -> None:
    """LoadBalancer and external-IP frontends from the world, through its ECMP route
    to both nodes (a flow's entry node is what the world's kernel picks for its
    5-tuple), and from pods through the socket LB; externalTrafficPolicy: Local
    keeps the client's address and serves only where a backend runs."""
    node_ip = {n["name"]: n["ip"] for n in (read_state() or {})["nodes"]}
    ports = [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
    ]
    apply(
        service("lb", {"app": "web"}, type="LoadBalancer", ports=ports),
        service("ext", {"app": "web"}, externalIPs=[EXTERNAL_IP], ports=ports),
        service("lb-local", {"pod": "web-2"}, type="LoadBalancer", externalTrafficPolicy="Local"),
    )
    lb, lb_local = lb_ingress("lb"), lb_ingress("lb-local")
    assert ipaddress.ip_address(lb) in ipaddress.ip_network(LB_IP_POOL)
    for frontend in (lb, EXTERNAL_IP):
        wait_active(frontend, 80, 3)  # its UDP port is written in the same sync
    wait_active(lb_local, 80, 1, ("node2",))

    for frontend in (lb, EXTERNAL_IP):
        served, entries = set(), set()
        for sport in range(41000, 41030):
            entry = entry_node(frontend, "tcp", sport, 80)
            got = world_http(frontend, 80, bind_port=sport)
            client = got["client"].rsplit(":", 1)[0]
            # A backend on the entry node sees the world; another is reached through SNAT.
            want = WORLD_IP if HOME[got["name"]] == entry else node_ip[entry]
            assert client == want, (frontend, sport, entry, got)
            served.add(got["name"])
            entries.add(entry)
        assert served == set(HOME) and entries == {"node1", "node2"}, (frontend, served)
        udp_entries = set()
        for sport in range(41100, 41106):
            udp_entries.add(entry_node(frontend, "udp", sport, 53))
            payload = b"lb-udp-%d" % sport
            assert world_udp(frontend, 53, payload, bind_port=sport) == (payload, (frontend, 53))
        assert udp_entries == {"node1", "node2"}

    # externalTrafficPolicy: Local: the world's router health-checks the nodes on
    # the service's healthCheckNodePort (lab/worldlb.py) and sends every flow to
    # node2 (web-2's), where it keeps the world's address. A flow forced to node1
    # is refused there: test_privileged_world_lb.py.
    sports = range(42000, 42040)

    def all_to_node2() -> bool:
        return {entry_node(lb_local, "tcp", s, 80) for s in sports} == {"node2"}

    wait_for(all_to_node2, 20, f"the world's health-checked route for {lb_local} via node2")
    for sport in sports[:4]:
        got = world_http(lb_local, 80, bind_port=sport)
        assert (got["name"], got["client"].rsplit(":", 1)[0]) == ("web-2", WORLD_IP), got
    # The same client port to another frontend of that backend (the service's
    # NodePort on node2) is a new flow, served although the first one's reply
    # tuple (web-2 to the world's port) is still in node2's NAT map.
    node_port = int(service_json("lb-local")["spec"]["ports"][0]["nodePort"])
    got = world_http(node_ip["node2"], node_port, bind_port=sports[0])
    assert (got["name"], got["client"]) == ("web-2", f"{WORLD_IP}:{sports[0]}"), got

    # From pods on both nodes: the socket LB translates at connect, no SNAT.
    for name in ("client", "client2"):
        pod = pods[name]
        for frontend in (lb, EXTERNAL_IP):
            served = set()
            for _ in range(30):
                s = tcp(pod, frontend, 80)
                try:
                    got = answer(s)
                finally:
                    s.close()
                assert got["client"].rsplit(":", 1)[0] == pod["status"]["podIP"], got
                served.add(got["name"])
            assert served == set(HOME), (name, frontend, served)
            with on_node(pod["spec"]["nodeName"]):
                u = socket_in(netns_of(pod), socket.AF_INET, socket.SOCK_DGRAM)
            u.setblocking(True)
            u.settimeout(3)
            try:
                u.connect((frontend, 53))
                u.send(b"pod-udp")
                assert u.recv(100) == b"pod-udp"
                assert u.getpeername() == (frontend, 53)
            finally:
                u.close()

    listing = ax("service", "list", "--node", "node1").stdout
    rows = {tuple(line.split()[1:3]) for line in listing.splitlines()[1:] if line[:1].strip()}
    assert {(f"{lb}:80", "LoadBalancer"), (f"{EXTERNAL_IP}:80", "ExternalIPs")} <= rows, listing
    assert (f"{lb}:53/UDP", "LoadBalancer") in rows, listing

    # externalTrafficPolicy: Local is for external clients only: pods on both
    # nodes, node1's included (no web-2 there), reach web-2 through the
    # internal twin of the entry the world is refused by on node1.
    assert {backend_of(pods[n], lb_local, 80) for n in ("client", "client2")} == {"web-2"}
    assert (f"{lb_local}:80/i", "LoadBalancer") in rows, listing
    assert "two-scopes" in ax("bpf", "lb", "list", "--node", "node1").stdout


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (service("bad", {"app": "web"}, ports=[{"port": 80, "protocol": "ICMP"}]),
         "spec.ports[0].protocol"),
        (service("bad", {"app": "web"}, clusterIP="10.42.0.9"), "spec.clusterIP"),
        (endpoint_slice("bad", "web", [{"addresses": ["not-an-ip"]}]), "endpoints[0].addresses[0]"),
    ],
)  # fmt: skip
def test_bad_documents_are_rejected_naming_the_field(
    pods: dict[str, dict[str, Any]], obj: dict[str, Any], field: str
) -> None:
    out = ax("apply", "-f", "-", stdin=manifest(obj), check=False)
    assert out.returncode != 0
    assert field in out.stderr, out.stderr
    listed = ax("get", "svc", "-n", NS).stdout + ax("get", "endpointslices", "-n", NS).stdout
    assert "bad" not in listed.split()
