"""Port sets as LPM blocks: exact coverage of the protocol/port line, and the inverse."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axoneme.datapath.portsets import (
    ALLOW,
    DENY,
    LINE_MAX,
    PortsEntry,
    check_entry,
    entry_interval,
    match,
    port_entries,
    port_verdicts,
)
from axoneme.policy.types import Interval, PortVerdicts

TCP, UDP = 6, 17


def line(proto: int, low: int, high: int | None = None) -> Interval:
    return (proto << 16 | low, proto << 16 | (low if high is None else high))


def test_whole_line_is_one_32_bit_entry() -> None:
    assert port_entries(PortVerdicts(allow=((0, LINE_MAX),))) == [PortsEntry(32, 0, 0, ALLOW)]


def test_one_protocol_is_one_48_bit_entry() -> None:
    entries = port_entries(PortVerdicts(deny=((UDP << 16, UDP << 16 | 0xFFFF),)))
    assert entries == [PortsEntry(48, UDP, 0, DENY)]


def test_single_port_and_range() -> None:
    entries = port_entries(PortVerdicts(allow=(line(TCP, 80), line(TCP, 8000, 8100))))
    assert entries == [
        PortsEntry(64, TCP, 80, ALLOW),
        PortsEntry(58, TCP, 8000, ALLOW),  # 8000-8063
        PortsEntry(59, TCP, 8064, ALLOW),  # 8064-8095
        PortsEntry(62, TCP, 8096, ALLOW),  # 8096-8099
        PortsEntry(64, TCP, 8100, ALLOW),
    ]


def test_protocol_runs_use_prefixes_33_to_39() -> None:
    # Protocols 6..255, every port: blocks of whole protocols before the pad byte.
    entries = port_entries(PortVerdicts(allow=((TCP << 16, LINE_MAX),)))
    assert [(e.prefixlen, e.proto) for e in entries] == [
        (39, 6), (37, 8), (36, 16), (35, 32), (34, 64), (33, 128),
    ]  # fmt: skip


def test_empty_set_has_no_entries() -> None:
    assert port_entries(PortVerdicts()) == []


@pytest.mark.parametrize(
    "verdicts",
    [
        PortVerdicts(allow=((5, 4),)),
        PortVerdicts(allow=((0, LINE_MAX + 1),)),
        PortVerdicts(allow=((10, 20), (15, 30))),
        PortVerdicts(allow=((10, 20), (0, 5))),
        PortVerdicts(allow=((10, 20),), deny=((20, 25),)),
    ],
)
def test_invalid_intervals_are_rejected(verdicts: PortVerdicts) -> None:
    with pytest.raises(ValueError):
        port_entries(verdicts)


@pytest.mark.parametrize(
    "entry",
    [
        PortsEntry(40, TCP, 0, ALLOW),  # inside the pad byte
        PortsEntry(47, TCP, 0, ALLOW),
        PortsEntry(65, TCP, 0, ALLOW),
        PortsEntry(63, TCP, 81, ALLOW),  # /63 must start on an even port
        PortsEntry(64, TCP, 80, 3),
        PortsEntry(64, 256, 80, ALLOW),
    ],
)
def test_malformed_entries_are_rejected(entry: PortsEntry) -> None:
    with pytest.raises(ValueError):
        check_entry(entry)


# Points where block arithmetic goes wrong first: protocol edges and powers of two.
EDGES = sorted(
    {0, LINE_MAX}
    | {p << 16 for p in (1, 6, 17, 132, 255)}
    | {(p << 16) - 1 for p in (1, 6, 17, 132, 255)}
    | {TCP << 16 | (1 << k) for k in range(16)}
)
points = st.one_of(st.integers(0, LINE_MAX), st.sampled_from(EDGES))


@st.composite
def labelled_line(draw: st.DrawFn) -> tuple[PortVerdicts, list[tuple[int, int, int | None]]]:
    """Random disjoint intervals, each allow, deny or uncovered, in line order."""
    cuts = sorted(set(draw(st.lists(points, min_size=1, max_size=12))))
    bounds = [*cuts, LINE_MAX + 1] if cuts[0] == 0 else [0, *cuts, LINE_MAX + 1]
    labelled = []
    for low, nxt in itertools.pairwise(bounds):
        labelled.append((low, nxt - 1, draw(st.sampled_from([ALLOW, DENY, None]))))
    allow = tuple((lo, hi) for lo, hi, v in labelled if v == ALLOW)
    deny = tuple((lo, hi) for lo, hi, v in labelled if v == DENY)
    return PortVerdicts(allow, deny), labelled


def _merge(intervals: tuple[Interval, ...]) -> tuple[Interval, ...]:
    out: list[list[int]] = []
    for low, high in intervals:
        if out and out[-1][1] + 1 == low:
            out[-1][1] = high
        else:
            out.append([low, high])
    return tuple((lo, hi) for lo, hi in out)


@settings(max_examples=300, deadline=None)
@given(labelled_line(), st.lists(points, max_size=30))
def test_lpm_lookup_gives_exactly_allow_deny_or_none(
    case: tuple[PortVerdicts, list[tuple[int, int, int | None]]], extra: list[int]
) -> None:
    verdicts, labelled = case
    entries = port_entries(verdicts)
    # Every interval's ends and neighbours, plus random points.
    samples = {p for lo, hi, _ in labelled for p in (lo, hi, lo - 1, hi + 1, (lo + hi) // 2)}
    samples = {p for p in samples | set(extra) if 0 <= p <= LINE_MAX}
    for point in samples:
        expected = next(v for lo, hi, v in labelled if lo <= point <= hi)
        assert match(entries, point >> 16, point & 0xFFFF) == expected, hex(point)
    # Blocks are disjoint, so the longest match is the only match.
    spans = sorted(entry_interval(e) for e in entries)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
    # And the inverse restores the intervals (adjacent ones merged).
    assert port_verdicts(entries) == PortVerdicts(_merge(verdicts.allow), _merge(verdicts.deny))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, LINE_MAX), st.integers(0, LINE_MAX))
def test_one_interval_needs_few_blocks(a: int, b: int) -> None:
    low, high = min(a, b), max(a, b)
    entries = port_entries(PortVerdicts(allow=((low, high),)))
    assert len(entries) <= 2 * 24  # at most two blocks per bit of the line
    assert sum(hi - lo + 1 for lo, hi in map(entry_interval, entries)) == high - low + 1
