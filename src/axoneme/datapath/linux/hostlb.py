"""North-south load balancing: ``bpf/build/bpf_host.o`` on the node's underlay device.

The object shares the service maps with the socket LB (pinned by name in the
node's pin directory) and adds ``axo_lb_nat`` (per-flow translations) and
``axo_lb_node`` (the SNAT address). Programs are pinned as
``prog_from_netdev``/``prog_to_netdev`` and attached as tc clsact filters on
the device's ingress and egress; they stay attached when the agent exits, and
an agent that finds them pinned adopts them.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from axoneme.datapath.linux import bpfsys, libbpf

__all__ = [
    "HOST_OBJECT",
    "MODE_DSR",
    "MODE_NO_BACKEND_DROP",
    "PROGRAMS",
    "attach",
    "detach",
    "load",
    "mode_bits",
    "set_mode",
    "set_node_ip",
]

HOST_OBJECT = Path(__file__).resolve().parents[4] / "bpf" / "build" / "bpf_host.o"
PROGRAMS = {"from_netdev": libbpf.BPF_TC_INGRESS, "to_netdev": libbpf.BPF_TC_EGRESS}
_MAPS = ("axo_lb_nat", "axo_lb_node", "axo_lb_mode")


_pin = libbpf.program_pin


def load(pin_dir: Path, object_path: Path = HOST_OBJECT) -> bool:
    """Pin the programs and maps in pin_dir unless already there; True if loaded now."""
    if all(_pin(pin_dir, n).exists() for n in PROGRAMS) and all(
        (pin_dir / m).exists() for m in _MAPS
    ):
        return False
    if not object_path.is_file():
        raise FileNotFoundError(f"BPF object {object_path} is missing (make -C bpf builds it)")
    libbpf.load_and_pin(object_path, pin_dir, PROGRAMS)
    return True


def set_node_ip(pin_dir: Path, ip: str) -> None:
    with bpfsys.BpfMap.open_pinned(pin_dir / "axo_lb_node") as m:
        m.update((0).to_bytes(4, "little"), socket.inet_aton(ip))


# axo_lb_mode[0] bits (lib/nodeport.h LB_MODE_*).
MODE_DSR = 1 << 0
MODE_NO_BACKEND_DROP = 1 << 1


def mode_bits(dsr: bool, no_backend_drop: bool) -> int:
    return (MODE_DSR if dsr else 0) | (MODE_NO_BACKEND_DROP if no_backend_drop else 0)


def set_mode(pin_dir: Path, dsr: bool, no_backend_drop: bool = False) -> None:
    """DSR (the frontend in an IP option, replies straight from the backend's node)
    or SNAT for backends on other nodes, and whether a packet to a frontend
    without a backend is only dropped or also answered with ICMP port
    unreachable (lib/nodeport.h ``axo_lb_mode``)."""
    with bpfsys.BpfMap.open_pinned(pin_dir / "axo_lb_mode") as m:
        m.update((0).to_bytes(4, "little"), mode_bits(dsr, no_backend_drop).to_bytes(4, "little"))


def attach(pin_dir: Path, ifindex: int) -> None:
    """Both programs on the device (in this thread's netns); replaces ours in place."""
    libbpf.tc_hook_create(ifindex)
    for name, point in PROGRAMS.items():
        fd = bpfsys.obj_get(_pin(pin_dir, name))
        try:
            libbpf.tc_attach(ifindex, point, fd)
        finally:
            os.close(fd)


def detach(ifindex: int) -> bool:
    found = False
    for point in PROGRAMS.values():
        found = libbpf.tc_detach(ifindex, point) or found
    return found
