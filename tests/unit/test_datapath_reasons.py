"""The drop-reason table is one table: Python's matches bpf/lib/drop.h exactly."""

from __future__ import annotations

import re
from pathlib import Path

from axoneme.datapath import reasons

DROP_H = Path(__file__).resolve().parents[2] / "bpf" / "lib" / "drop.h"
DEFINE = re.compile(r"^#define\s+DROP_(\w+)\s+\(-(\d+)\)\s*/\*\s*(.*?)\s*\*/\s*$")


def c_table() -> dict[int, tuple[str, str]]:
    table: dict[int, tuple[str, str]] = {}
    for line in DROP_H.read_text().splitlines():
        if line.startswith("#define DROP_"):
            found = DEFINE.match(line)
            assert found, f"drop.h line not in the shared format: {line!r}"
            name, code, text = found.groups()
            assert int(code) not in table, f"duplicate code {code}"
            table[int(code)] = (name, text)
    return table


def test_python_table_equals_drop_h() -> None:
    python = {r.code: (r.name, r.text) for r in reasons.REASONS.values()}
    assert python == c_table()


def test_contract_codes_are_present() -> None:
    assert reasons.name(133) == "POLICY_DENIED"
    assert reasons.name(181) == "POLICY_DENY"
    assert reasons.describe(133) == "Policy denied"


def test_unknown_codes_have_names() -> None:
    assert reasons.name(7) == "UNKNOWN_7"
    assert reasons.describe(7) == "Unknown drop reason 7"
