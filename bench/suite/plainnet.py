"""The reference environments: the lab's shape with plain kernel routing and no programs
(the limit), and the same with kube-proxy's iptables rules (the reference dataplane).

Everything lives in ``axb-m-*`` network namespaces with addresses no lab uses: an
underlay bridge in ``axb-m-lab`` (10.80.0.0/24), two nodes, a world host, and three pods
wired as Axoneme's agent wires them (``netdev.create_endpoint_link``: a /32 on ``eth0``, a
default route via 169.254.1.1 with a permanent neighbour; a /32 route and a permanent
neighbour on the node). Node i routes the other node's pod CIDR via its underlay address;
the world routes the pod CIDRs via node1, and node2 routes the world via node1, so a flow
from the world to a pod on node2 crosses node1 both ways, as a NodePort with SNAT does.
Nodes send no ICMP redirects (they would teach the world a shortcut past node1).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from axoneme.datapath.linux import netdev
from axoneme.kit.netns import entered
from suite.flows import PORTS_OTHER, PORTS_SAME, Env
from suite.kubeproxy import Service, ServicePort, filler_services, restore_input

PREFIX = "axb-m-"
LAB, NODE1, NODE2, WORLD = "axb-m-lab", "axb-m-node1", "axb-m-node2", "axb-m-world"
CLIENT, SERVER_SAME, SERVER_OTHER = "axb-m-client", "axb-m-srv1", "axb-m-srv2"
NAMESPACES = (LAB, NODE1, NODE2, WORLD, CLIENT, SERVER_SAME, SERVER_OTHER)

NODE1_IP, NODE2_IP, WORLD_IP = "10.80.0.11", "10.80.0.12", "10.80.0.254"
UNDERLAY_PREFIX = 24
POD_CIDR1, POD_CIDR2, CLUSTER_CIDR = "10.81.1.0/24", "10.81.2.0/24", "10.81.0.0/16"
CLIENT_IP, SERVER_SAME_IP, SERVER_OTHER_IP = "10.81.1.10", "10.81.1.20", "10.81.2.20"
SVC_SAME_IP, SVC_OTHER_IP = "10.82.0.10", "10.82.0.20"
ROUTER = "169.254.1.1"
IPTABLES_RESTORE = "iptables-nft-restore"


class PlainNetError(Exception):
    """Building or checking the environment failed."""


def path(name: str) -> str:
    return f"/run/netns/{name}"


def _ip(netns: str, lines: Sequence[str]) -> None:
    proc = subprocess.run(
        ["ip", "-n", netns, "-batch", "-"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise PlainNetError(f"ip -n {netns}: {proc.stderr.strip()[-400:]}")


def _sysctls(netns: str, values: dict[str, str]) -> None:
    with entered(path(netns)):
        for key, value in values.items():
            netdev.write_sysctl(key, value)


def existing() -> list[str]:
    proc = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return sorted(n for n in names if n.startswith(PREFIX))


def teardown() -> None:
    names = existing()
    if names:
        subprocess.run(
            ["ip", "-force", "-batch", "-"],
            input="".join(f"netns del {n}\n" for n in names),
            capture_output=True,
            text=True,
            check=False,
        )


def build() -> None:
    """The limit topology (see the module docstring); raises and tears down on failure."""
    teardown()
    try:
        _build()
    except Exception:
        teardown()
        raise


def _build() -> None:
    for name in NAMESPACES:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    _ip(LAB, ["link set lo up", "link add br0 type bridge", "link set br0 up"])
    router_sysctls = {
        "net.ipv4.ip_forward": "1",
        "net.ipv4.conf.all.rp_filter": "0",
        "net.ipv4.conf.default.rp_filter": "0",
        "net.ipv4.conf.all.send_redirects": "0",
        "net.ipv4.conf.default.send_redirects": "0",
    }
    for ns in (NODE1, NODE2):
        _sysctls(ns, router_sysctls)
    for i, (ns, ip) in enumerate(((NODE1, NODE1_IP), (NODE2, NODE2_IP), (WORLD, WORLD_IP))):
        port = f"axbm{i}"
        _ip(
            LAB,
            [
                f"link add {port} type veth peer name eth0 netns {ns}",
                f"link set {port} master br0 up",
            ],
        )
        _ip(ns, ["link set lo up", f"addr add {ip}/{UNDERLAY_PREFIX} dev eth0", "link set eth0 up"])
    for node, pod, host_if, ip in (
        (NODE1, CLIENT, "lxcmc", CLIENT_IP),
        (NODE1, SERVER_SAME, "lxcms1", SERVER_SAME_IP),
        (NODE2, SERVER_OTHER, "lxcms2", SERVER_OTHER_IP),
    ):
        with entered(path(node)):
            netdev.create_endpoint_link(
                netns=path(pod), ifname="eth0", host_ifname=host_if, address=ip, router_ip=ROUTER
            )
    _ip(NODE1, [f"route add {POD_CIDR2} via {NODE2_IP}"])
    _ip(NODE2, [f"route add {POD_CIDR1} via {NODE1_IP}", f"route add {WORLD_IP}/32 via {NODE1_IP}"])
    _ip(WORLD, [f"route add {CLUSTER_CIDR} via {NODE1_IP}"])


def bench_services() -> list[Service]:
    """The two Services the matrix dials, as the lab declares them (port = target = node)."""

    def ports(p: int, d: int) -> tuple[ServicePort, ...]:
        return (
            ServicePort("control", p, "TCP", p, p),
            ServicePort("data", d, "TCP", d, d),
            ServicePort("data-udp", d, "UDP", d, d),
        )

    return [
        Service(
            "bench",
            "qperf-same",
            SVC_SAME_IP,
            ports(PORTS_SAME.control, PORTS_SAME.data),
            (SERVER_SAME_IP,),
        ),
        Service(
            "bench",
            "qperf-other",
            SVC_OTHER_IP,
            ports(PORTS_OTHER.control, PORTS_OTHER.data),
            (SERVER_OTHER_IP,),
        ),
    ]


def install_kube_proxy(fillers: int) -> int:
    """kube-proxy's rules on both nodes: ``fillers`` other Services listed before ours.

    Returns the number of nat rules on node1 (checked: the rules are really there).
    """
    text = restore_input([*filler_services(fillers), *bench_services()], CLUSTER_CIDR)
    for node in (NODE1, NODE2):
        proc = subprocess.run(
            ["nsenter", f"--net={path(node)}", IPTABLES_RESTORE],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise PlainNetError(f"{IPTABLES_RESTORE} in {node}: {proc.stderr.strip()[-400:]}")
    listed = subprocess.run(
        ["nsenter", f"--net={path(NODE1)}", "iptables-nft", "-t", "nat", "-S"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    count = sum(1 for line in listed.splitlines() if line.startswith("-A "))
    want = sum(1 for line in text.split("*nat", 1)[1].splitlines() if line.startswith("-A "))
    if count != want:
        raise PlainNetError(f"node1 has {count} nat rules after restore, want {want}")
    return count


def env(kube_proxy: bool, fillers: int = 0) -> Env:
    """Build the topology (and the rules), and describe it for the matrix."""
    build()
    netns = {
        "node1": path(NODE1),
        "node2": path(NODE2),
        "world": path(WORLD),
        "client": path(CLIENT),
        "server-same": path(SERVER_SAME),
        "server-other": path(SERVER_OTHER),
    }
    targets = {
        "node2": NODE2_IP,
        "server-same": SERVER_SAME_IP,
        "server-other": SERVER_OTHER_IP,
    }
    if not kube_proxy:
        # No translation: the NodePort flows dial the backend pod itself (see flows.LIMIT_OF).
        return Env(
            netns,
            targets,
            {"svc-same": "the limit has no Services", "svc-other": "the limit has no Services"},
            detail="plain kernel routing between nodes, no programs, no rules",
            flow_targets={
                "external-to-nodeport-same-node": SERVER_SAME_IP,
                "external-to-nodeport-other-node": SERVER_OTHER_IP,
            },
        )
    rules = install_kube_proxy(fillers)
    targets |= {"svc-same": SVC_SAME_IP, "svc-other": SVC_OTHER_IP, "nodeport": NODE1_IP}
    return Env(
        netns,
        targets,
        {},
        detail=f"plain routing + kube-proxy iptables rules ({IPTABLES_RESTORE}), "
        f"{fillers} other Services first, {rules} nat rules per node",
    )
