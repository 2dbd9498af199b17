"""The struct twins of datapath/linux/maps.py: byte order and round trips (no kernel)."""

from __future__ import annotations

import pytest

from axoneme.datapath.linux.maps import (
    EGRESS,
    INGRESS,
    CtKey,
    CtValue,
    IPCacheKey,
    IPCacheValue,
    LxcInfo,
    PolicyCIDRKey,
    PolicyKey,
    PortsKey,
    PortsValue,
    lxc_flags,
)


def test_lxc_info_bytes() -> None:
    info = LxcInfo(7, 1001, "10.0.0.5", lxc_flags(ingress_enforced=True, egress_audit=True),
                   "02:aa:bb:cc:dd:ee", "02:11:22:33:44:55")  # fmt: skip
    raw = info.pack()
    assert raw == (
        (7).to_bytes(4, "little") + (1001).to_bytes(4, "little") + bytes([10, 0, 0, 5])
        + (9).to_bytes(4, "little") + bytes.fromhex("02aabbccddee")
        + bytes.fromhex("021122334455") + bytes(4)
    )  # fmt: skip
    assert LxcInfo.unpack(raw) == info
    assert info.enforced(INGRESS) and not info.enforced(EGRESS)
    assert info.audit(EGRESS) and not info.audit(INGRESS)


def test_ipcache_key_is_prefix_then_network_address() -> None:
    assert IPCacheKey("10.1.2.3/16").pack() == (16).to_bytes(4, "little") + bytes([10, 1, 0, 0])
    assert IPCacheKey("10.1.2.3").pack()[:4] == (32).to_bytes(4, "little")
    assert IPCacheKey.unpack(IPCacheKey("10.1.0.0/16").pack()) == IPCacheKey("10.1.0.0/16")
    value = IPCacheValue(5, "172.30.0.11", 1)
    assert IPCacheValue.unpack(value.pack()) == value


def test_policy_keys() -> None:
    key = PolicyKey(1001, 3, EGRESS)
    assert key.pack() == (1001).to_bytes(4, "little") + (3).to_bytes(2, "little") + b"\x01\x00"
    assert PolicyKey.unpack(key.pack()) == key
    cidr = PolicyCIDRKey(0x0102, INGRESS, "192.168.0.0/16")
    # prefixlen counts ep_id(16) + dir(8) + pad(8) + the prefix; ep_id is big-endian.
    assert cidr.pack() == (48).to_bytes(4, "little") + b"\x01\x02\x00\x00" + bytes([192, 168, 0, 0])
    assert PolicyCIDRKey.unpack(cidr.pack()) == cidr


def test_ports_key_is_big_endian_where_matched() -> None:
    key = PortsKey(0x01020304, 64, 6, 8080)
    assert key.pack() == (64).to_bytes(4, "little") + b"\x01\x02\x03\x04\x06\x00\x1f\x90"
    assert PortsKey.unpack(key.pack()) == key
    value = PortsValue(2, 0, 99)
    assert value.pack() == b"\x02\x00\x00\x00" + (99).to_bytes(4, "little")
    assert PortsValue.unpack(value.pack()) == value


def test_ct_twins() -> None:
    key = CtKey("10.0.0.1", "10.0.0.2", 40000, 80, 6, INGRESS)
    assert key.pack()[8:12] == (40000).to_bytes(2, "big") + (80).to_bytes(2, "big")
    assert CtKey.unpack(key.pack()) == key
    assert key.reversed() == CtKey("10.0.0.2", "10.0.0.1", 80, 40000, 6, EGRESS)
    value = CtValue(1, 2, 3, 4, 5, 6, 0x12, 1, 0x10, 1)
    assert len(value.pack()) == 48
    assert CtValue.unpack(value.pack()) == value


def test_bad_addresses_are_rejected() -> None:
    with pytest.raises(ValueError):
        LxcInfo(1, 2, "10.0.0.256").pack()
    with pytest.raises(ValueError):
        IPCacheKey("10.0.0.0/33").pack()
