"""GRO and TX checksum offload on and off through the ethtool ioctl (no ethtool binary).

Why the lab needs them for XDP on veth:

- a veth sends XDP_REDIRECT frames into its peer's NAPI queue, which exists only
  when the peer runs XDP itself or has GRO on (Linux 5.13+); otherwise they are
  dropped. The peers of the nodes' ``eth0`` are the underlay bridge's ports.
- a packet sent by a local socket over a veth carries a partial TCP/UDP checksum
  (CHECKSUM_PARTIAL: the pseudo-header sum only, completed by whichever device
  finally transmits it). XDP sees bytes, not that flag; a frame it redirects
  becomes a new packet whose partial checksum nobody completes, and the receiver
  drops it (TcpInCsumErrors). A real NIC delivers complete checksums, so the
  lab's underlay devices transmit with offload off, as a wire would carry them.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct

from axoneme.kit.netns import socket_in

__all__ = ["get_gro", "get_tx_csum", "set_gro", "set_tx_csum"]

_SIOCETHTOOL = 0x8946
_ETHTOOL_GTXCSUM = 0x16
_ETHTOOL_STXCSUM = 0x17
_ETHTOOL_GGRO = 0x2B
_ETHTOOL_SGRO = 0x2C
_IFREQ_SIZE = 40  # struct ifreq on 64-bit Linux


def _ethtool(netns: str, ifname: str, cmd: int, data: int = 0) -> int:
    name = ifname.encode()
    if not name or len(name) > 15:
        raise ValueError(f"ifname: {ifname!r} is not a device name")
    value = ctypes.create_string_buffer(struct.pack("II", cmd, data))
    ifreq = struct.pack("16sP", name, ctypes.addressof(value)).ljust(_IFREQ_SIZE, b"\0")
    with socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifreq)
    return int(struct.unpack("II", value.raw[:8])[1])


def get_gro(netns: str, ifname: str) -> bool:
    """Whether GRO is on for ``ifname`` in the namespace ``netns`` (a name or a path)."""
    return bool(_ethtool(netns, ifname, _ETHTOOL_GGRO))


def set_gro(netns: str, ifname: str, on: bool) -> None:
    _ethtool(netns, ifname, _ETHTOOL_SGRO, int(on))


def get_tx_csum(netns: str, ifname: str) -> bool:
    return bool(_ethtool(netns, ifname, _ETHTOOL_GTXCSUM))


def set_tx_csum(netns: str, ifname: str, on: bool) -> None:
    """TX checksum offload (off: the stack completes checksums before the device sends)."""
    _ethtool(netns, ifname, _ETHTOOL_STXCSUM, int(on))
