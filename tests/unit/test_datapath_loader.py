"""Loader guards that need no kernel objects (the real load is in tests/privileged)."""

from __future__ import annotations

from pathlib import Path

import pytest

from axoneme.datapath.linux.loader import DEFAULT_OBJECT, PROGRAMS, Datapath, DatapathError


def test_remove_refuses_a_directory_outside_bpffs(tmp_path: Path) -> None:
    (tmp_path / "keep").write_text("precious")
    with pytest.raises(DatapathError, match="not on a bpffs"):
        Datapath.remove(tmp_path)
    assert (tmp_path / "keep").read_text() == "precious"


def test_remove_of_a_missing_directory_is_a_no_op(tmp_path: Path) -> None:
    assert Datapath.remove(tmp_path / "gone") == []


def test_defaults_point_at_the_checkout() -> None:
    assert DEFAULT_OBJECT.parts[-3:] == ("bpf", "build", "bpf_lxc.o")
    assert set(PROGRAMS) == {"from_container", "to_container"}
