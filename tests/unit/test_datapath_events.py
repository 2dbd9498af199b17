"""Decoding the 64-byte datapath event records."""

from __future__ import annotations

import struct

import pytest

from axoneme.datapath import events as ev


def sample(**changes: object) -> ev.DatapathEvent:
    fields: dict[str, object] = dict(
        ts_ns=123456789, type=ev.EVENT_DROP, verdict=ev.VERDICT_DROPPED, dir=0, proto=6,
        ep_id=42, reason=181, src_identity=1001, dst_identity=1002, saddr="10.0.0.1",
        daddr="10.0.0.2", sport=40000, dport=80, tcp_flags=0x02, ct_state=ev.CT_NEW,
        ifindex=7, len=74, cookie=11,
    )  # fmt: skip
    fields.update(changes)
    return ev.DatapathEvent(**fields)  # type: ignore[arg-type]


def test_record_layout_by_hand() -> None:
    raw = bytearray(64)
    struct.pack_into("=QBBBBHHII", raw, 0, 99, 2, 4, 1, 17, 5, 133, 3, 4)
    raw[24:28] = bytes([192, 168, 0, 1])
    raw[28:32] = bytes([8, 8, 8, 8])
    raw[32:36] = (5353).to_bytes(2, "big") + (53).to_bytes(2, "big")
    raw[36], raw[37] = 0, 2
    struct.pack_into("=III", raw, 40, 9, 60, 77)
    raw[52:64] = b"\xff" * 12  # padding is ignored
    event = ev.decode(bytes(raw))
    assert event == ev.DatapathEvent(
        ts_ns=99, type=2, verdict=4, dir=1, proto=17, ep_id=5, reason=133, src_identity=3,
        dst_identity=4, saddr="192.168.0.1", daddr="8.8.8.8", sport=5353, dport=53,
        tcp_flags=0, ct_state=2, ifindex=9, len=60, cookie=77,
    )  # fmt: skip
    assert (event.type_name, event.verdict_name, event.direction, event.ct_state_name) == (
        "POLICY_VERDICT", "AUDIT", "egress", "reply",
    )  # fmt: skip
    assert event.reason_name == "POLICY_DENIED"


def test_roundtrip_and_many() -> None:
    events = [sample(), sample(type=ev.EVENT_TRACE, verdict=1, reason=0, ct_state=1)]
    raw = b"".join(ev.encode(e) for e in events)
    assert len(raw) == 2 * ev.EVENT_SIZE == 128
    assert list(ev.decode_many(raw)) == events
    assert ev.decode(raw, 64) == events[1]


def test_summary_names_the_reason() -> None:
    line = sample().summary()
    assert "DROP DROPPED (Policy denied by denylist)" in line
    assert "10.0.0.1:40000 -> 10.0.0.2:80" in line
    assert sample(reason=0).reason_name == ""


def test_short_records_are_errors() -> None:
    with pytest.raises(ValueError):
        ev.decode(bytes(63))
    with pytest.raises(ValueError):
        list(ev.decode_many(bytes(65)))
