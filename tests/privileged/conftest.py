"""Privileged fixtures: a running lab, and the leak check around it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from axoneme.lab import control
from axoneme.lab.topology import LabConfig


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/privileged/" in str(item.fspath):
            item.add_marker(pytest.mark.privileged)


def lab_config(nodes: int = 2, **options: Any) -> LabConfig:
    """The lab config of the suite, with ``options`` (LabConfig fields) on top;
    ``AXONEME_TEST_ROUTING=MODE/HOST`` (e.g. ``native/legacy``) runs every lab
    test in another routing mode."""
    mode, _, host = os.environ.get("AXONEME_TEST_ROUTING", "").partition("/")
    defaults = LabConfig()
    return LabConfig(
        nodes=nodes,
        routing_mode=mode or defaults.routing_mode,
        host_routing=host or defaults.host_routing,
        **options,
    )


def lab_down_clean() -> None:
    control.down()
    left = control.leftovers()
    assert left.empty, f"lab down left: {left}"


@contextlib.contextmanager
def started_lab(config: LabConfig) -> Iterator[dict[str, Any]]:
    """A lab with ``config``, removed afterwards with nothing left behind (take lab_lock)."""
    control.down(grace=5.0)  # a lab left running (by hand or a crash) is replaced
    state = control.up(config)
    try:
        yield state
    finally:
        lab_down_clean()


@pytest.fixture(scope="module")
def lab(lab_lock: None) -> Iterator[dict[str, Any]]:
    """A 2-node lab for the module."""
    with started_lab(lab_config()) as state:
        yield state
