"""Maglev tables: full, balanced, minimally disrupted; the flow hash twin."""

from __future__ import annotations

from collections import Counter

import pytest

from axoneme.loadbalancer.maglev import TABLE_SIZES, flow_hash, is_prime, table


def backends(n: int) -> list[tuple[str, int]]:
    return [(f"10.42.{i // 250}.{i % 250 + 2}:8080", i + 1) for i in range(n)]


def test_sizes_are_prime() -> None:
    assert all(is_prime(m) for m in TABLE_SIZES)
    with pytest.raises(ValueError, match="not prime"):
        table(backends(2), 1000)


@pytest.mark.parametrize("n", [1, 3, 10, 100])
def test_table_is_full_and_balanced(n: int) -> None:
    t = table(backends(n), 16381)
    assert len(t) == 16381
    counts = Counter(t)
    assert set(counts) == {i + 1 for i in range(n)}
    # Maglev's guarantee: each backend's share within a few percent of 1/N.
    assert max(counts.values()) / min(counts.values()) < 1.1


def test_table_depends_on_the_set_not_the_order() -> None:
    b = backends(5)
    assert table(b, 251) == table(list(reversed(b)), 251)


def test_removing_one_backend_moves_little_else() -> None:
    before = table(backends(10), 16381)
    after = table(backends(10)[:-1], 16381)
    kept_elsewhere = [(x, y) for x, y in zip(before, after, strict=True) if x != 10]
    moved = sum(x != y for x, y in kept_elsewhere)
    # Only slots of the removed backend must move; Maglev moves a few percent more.
    assert moved / len(kept_elsewhere) < 0.03


def test_empty() -> None:
    assert table([], 251) == ()


def test_flow_hash_is_32_bit_and_spreads() -> None:
    values = {flow_hash(0x0A600002, (80 << 16) | p, 0x0A2A0103) for p in range(1000)}
    assert len(values) == 1000
    assert all(0 <= v < 2**32 for v in values)
    assert flow_hash(1, 2, 3) == flow_hash(1, 2, 3) != flow_hash(1, 2, 4)
