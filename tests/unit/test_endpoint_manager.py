"""Endpoint lifecycle against the in-memory datapath: ADD/DEL/CHECK/GC, crashes, restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axoneme.datapath.fake import FakeDriver
from axoneme.endpoint.manager import (
    CODE_IPAM_EXHAUSTED,
    CODE_LINK_FAILED,
    EndpointError,
    EndpointManager,
    PodInfo,
)

CIDR = "10.42.1.0/24"


def manager(tmp_path: Path, driver: FakeDriver, cidr: str = CIDR) -> EndpointManager:
    return EndpointManager(tmp_path / "state.json", cidr, driver)


def test_add_allocates_wires_and_persists(tmp_path: Path) -> None:
    driver = FakeDriver()
    m = manager(tmp_path, driver)
    ep = m.add("c1", "eth0", "/run/netns/p1", PodInfo("demo", "web", {"app": "web"}))
    assert ep.ipv4 == "10.42.1.2" and ep.state == "ready" and ep.id == 1
    assert driver.links[ep.host_ifname].address == "10.42.1.2"
    assert driver.links[ep.host_ifname].router_ip == "10.42.1.1"
    again = manager(tmp_path, driver)  # a restarted agent reads the same state
    assert [e.ipv4 for e in again.endpoints()] == ["10.42.1.2"]
    assert again.endpoints()[0].labels == {"app": "web"}


def test_repeated_add_returns_the_same_endpoint(tmp_path: Path) -> None:
    m = manager(tmp_path, FakeDriver())
    a = m.add("c1", "eth0", "/run/netns/p1", PodInfo())
    assert m.add("c1", "eth0", "/run/netns/p1", PodInfo()) == a
    with pytest.raises(EndpointError):
        m.add("c1", "eth0", "/run/netns/OTHER", PodInfo())


def test_failed_link_leaves_nothing(tmp_path: Path) -> None:
    driver = FakeDriver(fail_create="no such netns")
    m = manager(tmp_path, driver)
    with pytest.raises(EndpointError) as exc:
        m.add("c1", "eth0", "/run/netns/p1", PodInfo())
    assert exc.value.code == CODE_LINK_FAILED
    assert m.endpoints() == [] and m.ipam.usage().allocated == 0
    assert json.loads((tmp_path / "state.json").read_text())["endpoints"] == []


def test_exhaustion_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    driver = FakeDriver()
    m = manager(tmp_path, driver, "10.42.1.0/30")
    m.add("c1", "eth0", "/run/netns/p1", PodInfo())
    with pytest.raises(EndpointError) as exc:
        m.add("c2", "eth0", "/run/netns/p2", PodInfo())
    assert exc.value.code == CODE_IPAM_EXHAUSTED
    assert "range is full" in exc.value.details
    assert len(driver.links) == 1 and len(m.endpoints()) == 1


def test_delete_is_idempotent_and_releases(tmp_path: Path) -> None:
    driver = FakeDriver()
    m = manager(tmp_path, driver)
    m.add("c1", "eth0", "/run/netns/p1", PodInfo())
    assert m.delete("c1", "eth0") is not None
    assert m.delete("c1", "eth0") is None
    assert m.delete("never-seen", "eth0") is None
    assert driver.links == {} and m.ipam.usage().allocated == 0


def test_restore_undoes_an_add_interrupted_by_a_crash(tmp_path: Path) -> None:
    driver = FakeDriver()
    m = manager(tmp_path, driver)
    m.add("c1", "eth0", "/run/netns/p1", PodInfo())
    # Simulate kill -9 between "creating" being saved and the ADD finishing.
    state = json.loads((tmp_path / "state.json").read_text())
    state["endpoints"][0]["state"] = "creating"
    (tmp_path / "state.json").write_text(json.dumps(state))
    driver.links["lxcorphan00000"] = driver.links[next(iter(driver.links))]
    restarted = manager(tmp_path, driver)
    actions = restarted.restore()
    assert restarted.endpoints() == []
    assert restarted.ipam.usage().allocated == 0
    assert driver.links == {}
    assert any("unfinished ADD" in a for a in actions)
    assert any("orphan device lxcorphan00000" in a for a in actions)


def test_restore_marks_endpoints_whose_devices_vanished(tmp_path: Path) -> None:
    driver = FakeDriver()
    m = manager(tmp_path, driver)
    ep = m.add("c1", "eth0", "/run/netns/p1", PodInfo())
    del driver.links[ep.host_ifname]
    restarted = manager(tmp_path, driver)
    restarted.restore()
    assert restarted.endpoints()[0].state == "not-ready"
    assert restarted.ipam.ip_of("c1/eth0") is not None  # the pod keeps its address


def test_check_and_gc(tmp_path: Path) -> None:
    driver = FakeDriver()
    m = manager(tmp_path, driver)
    m.add("c1", "eth0", "/run/netns/p1", PodInfo())
    m.add("c2", "eth0", "/run/netns/p2", PodInfo())
    assert m.check("c1", "eth0") == []
    with pytest.raises(EndpointError) as exc:
        m.check("c9", "eth0")
    assert exc.value.code == 3
    removed = m.gc({"c1/eth0"})
    assert [e.container_id for e in removed] == ["c2"]
    assert [e.container_id for e in m.endpoints()] == ["c1"]
