"""Interval sets on the protocol/port line: algebra against Python sets, PortProtocol mapping."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axoneme.policy import intervals as iv
from axoneme.policy.types import Interval, PortProtocol

SMALL = 80  # property tests compare against explicit point sets on [0, SMALL)


def points(intervals: tuple[Interval, ...]) -> set[int]:
    return {p for lo, hi in intervals for p in range(lo, hi + 1)}


@st.composite
def interval_lists(draw: st.DrawFn, top: int = SMALL - 1) -> list[Interval]:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        lo = draw(st.integers(0, top))
        hi = draw(st.integers(lo, min(top, lo + 20)))
        out.append((lo, hi))
    return out


def canonical(intervals: tuple[Interval, ...]) -> bool:
    return all(lo <= hi for lo, hi in intervals) and all(
        a[1] + 1 < b[0] for a, b in itertools.pairwise(intervals)
    )


@settings(max_examples=300, derandomize=True)
@given(interval_lists(), interval_lists())
def test_set_algebra_matches_point_sets(a_raw: list[Interval], b_raw: list[Interval]) -> None:
    a, b = iv.normalize(a_raw), iv.normalize(b_raw)
    assert points(a) == {p for lo, hi in a_raw for p in range(lo, hi + 1)}
    for result, expected in (
        (iv.union(a, b), points(a) | points(b)),
        (iv.intersect(a, b), points(a) & points(b)),
        (iv.subtract(a, b), points(a) - points(b)),
    ):
        assert canonical(result)
        assert points(result) == expected
    for p in range(SMALL):
        assert iv.contains(a, p) == (p in points(a))
    assert iv.size(a) == len(points(a))
    # canonical form makes equality of sets equality of tuples
    assert iv.union(iv.subtract(a, b), iv.intersect(a, b)) == a


@settings(max_examples=200, derandomize=True)
@given(
    interval_lists(top=iv.LINE_MAX), interval_lists(top=iv.LINE_MAX), st.integers(0, iv.LINE_MAX)
)
def test_membership_on_the_full_line(a_raw: list[Interval], b_raw: list[Interval], x: int) -> None:
    a, b = iv.normalize(a_raw), iv.normalize(b_raw)
    in_a, in_b = iv.contains(a, x), iv.contains(b, x)
    assert iv.contains(iv.union(a, b), x) == (in_a or in_b)
    assert iv.contains(iv.intersect(a, b), x) == (in_a and in_b)
    assert iv.contains(iv.subtract(a, b), x) == (in_a and not in_b)
    assert iv.subtract(iv.FULL, iv.subtract(iv.FULL, a)) == a


def test_normalize_merges_adjacent_and_rejects_bad_bounds() -> None:
    assert iv.normalize([(5, 9), (0, 4), (20, 30), (25, 26)]) == ((0, 9), (20, 30))
    with pytest.raises(ValueError):
        iv.normalize([(3, 2)])
    with pytest.raises(ValueError):
        iv.normalize([(0, iv.LINE_MAX + 1)])


def test_port_protocol_mapping() -> None:
    tcp80 = (6 << 16) | 80
    assert iv.from_port_protocol(PortProtocol(80, protocol="TCP")) == ((tcp80, tcp80),)
    assert iv.from_port_protocol(PortProtocol(80, 90, "UDP")) == (
        ((17 << 16) | 80, (17 << 16) | 90),
    )
    # port 0 = every port of the protocol
    assert iv.from_port_protocol(PortProtocol(0, protocol="SCTP")) == (
        (132 << 16, (132 << 16) | 0xFFFF),
    )
    # ANY = TCP + UDP + SCTP, not ICMP
    any_ = iv.from_port_protocol(PortProtocol(53))
    assert [iv.contains(any_, iv.point(p, 53)) for p in ("TCP", "UDP", "SCTP", "ICMP")] == [
        True,
        True,
        True,
        False,
    ]
    assert iv.format_intervals(any_) == ["TCP/53", "UDP/53", "SCTP/53"]
    # end_port below port: just the port
    assert iv.from_port_protocol(PortProtocol(80, 10, "TCP")) == ((tcp80, tcp80),)


def test_no_ports_is_the_whole_line_including_icmp() -> None:
    assert iv.from_ports(()) == iv.FULL
    assert iv.contains(iv.from_ports(()), iv.point("ICMP", 0))
    assert iv.format_intervals(iv.FULL) == ["*"]
    assert iv.from_ports((PortProtocol(80, protocol="TCP"), PortProtocol(81, protocol="TCP"))) == (
        ((6 << 16) | 80, (6 << 16) | 81),
    )


def test_named_port_must_be_resolved_first() -> None:
    with pytest.raises(ValueError, match="named port"):
        iv.from_port_protocol(PortProtocol(name="http"))


def test_protocol_numbers_and_format() -> None:
    assert iv.protocol_number("tcp") == 6
    assert iv.protocol_number("icmp") == 1
    assert iv.protocol_number("47") == 47
    with pytest.raises(ValueError):
        iv.protocol_number("bogus")
    assert iv.format_intervals(iv.port_range("TCP", 0, 0xFFFF)) == ["TCP/*"]
    assert iv.format_intervals(iv.port_range("TCP", 8000, 8080)) == ["TCP/8000-8080"]
