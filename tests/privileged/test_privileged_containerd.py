"""A real container runtime calls axoneme-cni: containerd 1.6 + runc + ``ctr run --cni``.

``cni-runtime-feasibility.md`` §1-3 describes the runtime side. The module builds
a 1-node lab, installs the plugin where ctr looks for it (the lexicographically
first config in ``/etc/cni/net.d``, the binary in ``/opt/cni/bin``), starts a
private containerd in scratch, imports a busybox image built here, and runs
containers in three ways:

* ``ctr run --rm --cni`` in the foreground: the container gets its address,
  routes and reaches the node, and ctr's DEL (with an empty ``CNI_NETNS``)
  releases everything;
* the same, held running, to see the endpoint from the agent's API and the node;
* ``ctr run -d --cni``, which never runs DEL: the test runs DEL itself.

Teardown removes exactly what the module created, then checks the host against
what it looked like before (files, containerd processes, cgroup dirs).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from axoneme.api.client import AgentClient
from axoneme.lab import control
from axoneme.lab.containerd import CGROUP_ROOT, CNI_CACHE_DIR, RUN_DIR, Containerd
from axoneme.lab.ociimage import build_busybox_image
from axoneme.lab.topology import LabConfig, cni_bin_dir, node_plans

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

# As tests/conftest.py: the conftest modules are not importable by a package name here.
REQUIRE_PRIVILEGED = os.environ.get("AXONEME_REQUIRE_PRIVILEGED") == "1"

BUSYBOX = Path("/bin/busybox")
IMAGE = "localhost/axoneme-test/busybox:1"
NET_D = Path("/etc/cni/net.d")
CNI_BIN = Path("/opt/cni/bin")
CONFLIST = NET_D / "10-axoneme.conflist"
PLUGIN = CNI_BIN / "axoneme-cni"
NETWORK = "axoneme"
CTR_NAMESPACE = "default"  # ctr's; CNI_CONTAINERID is "<namespace>-<container id>"
CONFIG = Path("/opt/containerd")  # containerd 1.6 creates it unless the opt plugin is moved

LAB = LabConfig(nodes=1)
NODE = node_plans(LAB)[0]
POD_CIDR = ipaddress.ip_network(NODE.pod_cidr)
ROUTER_IP = str(POD_CIDR.network_address + 1)
PLUGIN_CONF = {"type": "axoneme-cni", "agentSocket": str(NODE.socket)}
CONFLIST_TEXT = json.dumps({"cniVersion": "1.0.0", "name": NETWORK, "plugins": [PLUGIN_CONF]})
# Host paths the module may create; each must look the same afterwards.
WATCHED = [
    Path("/etc/cni"),
    NET_D,
    Path("/opt/cni"),
    CNI_BIN,
    CONFLIST,
    PLUGIN,
    RUN_DIR,
    CNI_CACHE_DIR,
    CNI_CACHE_DIR / "results",
    CONFIG,
    Path("/var/lib/containerd"),
]
RUNTIME_COMMS = ("containerd", "containerd-shim", "containerd-shim-runc-v2", "runc")


def _unusable(reason: str) -> None:
    if REQUIRE_PRIVILEGED:
        pytest.fail(f"containerd test cannot run: {reason} (AXONEME_REQUIRE_PRIVILEGED=1)")
    pytest.skip(reason)


def _is_static_elf(path: Path) -> bool:
    """True for an ELF64 little-endian executable with no PT_INTERP (no dynamic loader)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    pt_interp = 3
    return all(
        struct.unpack_from("<I", data, phoff + i * phentsize)[0] != pt_interp for i in range(phnum)
    )


def _is_own_leftover(path: Path) -> bool:
    """A file this module installs, left by a run that crashed: safe to take over."""
    if path == CONFLIST and path.is_file() and not path.is_symlink():
        return path.read_text() == CONFLIST_TEXT
    if path == PLUGIN and path.is_symlink():
        return os.readlink(path) == str(cni_bin_dir() / "axoneme-cni")
    return False


def _foreign_entries(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(
        str(directory / name)
        for name in os.listdir(directory)
        if not _is_own_leftover(directory / name)
    )


def _runtime_pids() -> set[int]:
    """Live containerd, shim and runc processes on the machine."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        if comm in RUNTIME_COMMS and state != "Z":
            pids.add(int(entry))
    return pids


def _default_cgroups() -> set[str]:
    return {str(p) for p in CGROUP_ROOT.glob(f"*/{CTR_NAMESPACE}")}


@dataclass(frozen=True)
class HostBefore:
    paths: dict[Path, bool]
    runtime_pids: set[int]
    cgroups: set[str]


@pytest.fixture(scope="module")
def host_before(lab_lock: None) -> Iterator[HostBefore]:
    """Check the host can take the test without disturbing anything; compare at the end."""
    missing = Containerd.missing_binaries()
    if missing:
        _unusable(f"needs {', '.join(missing)} (Debian: containerd, runc)")
    if not BUSYBOX.is_file() or not _is_static_elf(BUSYBOX):
        _unusable(f"needs a static {BUSYBOX} (Debian: busybox-static)")
    for directory in (NET_D, CNI_BIN):
        foreign = _foreign_entries(directory)
        if foreign:
            _unusable(
                f"{directory} already holds {', '.join(foreign)}; ctr would use the host's CNI "
                "setup, and this test does not touch files it did not create"
            )
    for stale in (CONFLIST, PLUGIN):
        if stale.is_symlink() or stale.exists():
            stale.unlink()  # our own, from a run that crashed (checked above)
    before = HostBefore(
        paths={p: p.exists() or p.is_symlink() for p in WATCHED},
        runtime_pids=_runtime_pids(),
        cgroups=_default_cgroups(),
    )
    yield before
    after = {p: p.exists() or p.is_symlink() for p in WATCHED}
    changed = [
        f"{p} ({'created' if after[p] else 'removed'})"
        for p in WATCHED
        if after[p] != before.paths[p]
    ]
    assert not changed, f"host paths changed: {changed}"
    new_pids = _runtime_pids() - before.runtime_pids
    assert not new_pids, f"runtime processes left: {new_pids}"
    new_cgroups = _default_cgroups() - before.cgroups
    assert not new_cgroups, f"cgroup dirs left: {sorted(new_cgroups)}"


@pytest.fixture(scope="module")
def lab1(host_before: HostBefore) -> Iterator[dict[str, Any]]:
    """A 1-node lab (under the lab lock, through host_before); down and leak-checked after.

    The same steps as the ``lab`` fixture of tests/privileged/conftest.py, with 1 node.
    """
    state = control.up(LAB)  # up clears what an earlier run left first
    try:
        yield state
    finally:
        control.down()
        left = control.leftovers()
        assert left.empty, f"lab down left: {left}"


@pytest.fixture(scope="module")
def cni_installed(lab1: dict[str, Any]) -> Iterator[None]:
    """The conflist and the plugin where ctr looks; exactly these (and new dirs) removed after."""
    created_dirs = [
        d for d in (Path("/etc/cni"), NET_D, Path("/opt/cni"), CNI_BIN) if not d.exists()
    ]
    created: list[Path] = []
    try:
        NET_D.mkdir(parents=True, exist_ok=True)
        CNI_BIN.mkdir(parents=True, exist_ok=True)
        CONFLIST.write_text(CONFLIST_TEXT)
        created.append(CONFLIST)
        PLUGIN.symlink_to(cni_bin_dir() / "axoneme-cni")
        created.append(PLUGIN)
        yield
    finally:
        for path in created:
            path.unlink(missing_ok=True)
        for directory in reversed(created_dirs):
            directory.rmdir()  # fails loudly if something else was put there meanwhile


@pytest.fixture(scope="module")
def ctrd(cni_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """A private containerd with the busybox image imported; stopped and checked after."""
    scratch = tmp_path_factory.mktemp("ctrd")
    daemon = Containerd(scratch / "c", lab_mark=True)
    daemon.start()
    try:
        build_busybox_image(BUSYBOX, scratch / "busybox-oci.tar", IMAGE)
        daemon.ctr("image", "import", str(scratch / "busybox-oci.tar"))
        assert IMAGE in daemon.ctr("image", "ls", "-q").stdout.split()
        yield daemon
    finally:
        actions = daemon.stop()
        left = daemon.leftovers()
        assert not left, f"containerd left {left} (stop did: {actions})"


@pytest.fixture
def agent(lab1: dict[str, Any]) -> AgentClient:
    return AgentClient(NODE.socket, timeout=10.0)


# --- helpers ------------------------------------------------------------------------------


def cni_container_id(container: str) -> str:
    return f"{CTR_NAMESPACE}-{container}"


def allocated(agent: AgentClient) -> int:
    count = agent.get("/v1/status")["ipam"]["allocated"]
    assert isinstance(count, int)
    return count


def endpoints_of(agent: AgentClient, container: str) -> list[dict[str, Any]]:
    cid = cni_container_id(container)
    return [e for e in agent.get("/v1/endpoints") if e["containerId"] == cid]


def result_cache(container: str) -> Path:
    return CNI_CACHE_DIR / "results" / f"{NETWORK}-{cni_container_id(container)}-eth0"


def parse_eth0(output: str) -> ipaddress.IPv4Interface:
    found = re.search(r"inet (\d+\.\d+\.\d+\.\d+/\d+) .*\beth0\b", output)
    assert found, f"no IPv4 address on eth0 in:\n{output}"
    return ipaddress.IPv4Interface(found.group(1))


def node_link_exists(name: str) -> bool:
    done = subprocess.run(
        ["ip", "-n", NODE.netns, "link", "show", name], capture_output=True, text=True
    )
    return done.returncode == 0


def ping_from_node(ip: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", NODE.netns, "ping", "-c1", "-W2", ip],
        capture_output=True,
        text=True,
        timeout=10,
    )


def assert_gone(ctrd: Containerd, agent: AgentClient, container: str, before: int) -> None:
    """DEL ran: no endpoint, the address released, no cache entry, no container left."""
    assert endpoints_of(agent, container) == []
    assert allocated(agent) == before
    assert not result_cache(container).exists()
    assert container not in ctrd.ctr("containers", "ls", "-q").stdout.split()


class Lines:
    """Collect a process's stdout lines in a thread; wait for a marker line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, marker: str, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: any(line.strip() == marker for line in self.lines), timeout
            )

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)


# --- tests --------------------------------------------------------------------------------


def test_run_rm_gets_address_routes_and_reaches_node(ctrd: Containerd, agent: AgentClient) -> None:
    before = allocated(agent)
    started = time.monotonic()
    done = ctrd.ctr(
        "run", "--rm", "--cni", IMAGE, "c1",
        "sh", "-c", f"ip -4 addr show eth0; ip route; ping -c1 -W2 {NODE.ip}",
        check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"ctr run failed ({done.returncode}): {done.stderr}{done.stdout}"
    address = parse_eth0(done.stdout)
    assert address.ip in POD_CIDR
    assert address.network.prefixlen == 32
    assert re.search(rf"^default via {re.escape(ROUTER_IP)} dev eth0", done.stdout, re.M)
    assert "1 packets received" in done.stdout, done.stdout
    # ctr's DEL after --rm (with CNI_NETNS="") released the endpoint and its address.
    assert_gone(ctrd, agent, "c1", before)
    assert elapsed < 20, f"ctr run took {elapsed:.1f}s"


def test_endpoint_visible_while_running_then_released(ctrd: Containerd, agent: AgentClient) -> None:
    before = allocated(agent)
    # The shell is the container's PID 1: SIGTERM reaches it only through a handler.
    script = "trap 'exit 0' TERM; ip -4 addr show eth0; echo READY; sleep 120 & wait"
    with subprocess.Popen(
        ["ctr", "run", "--rm", "--cni", IMAGE, "c2", "sh", "-c", script],
        env=ctrd.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        lines = Lines(proc)
        try:
            assert lines.wait_for("READY", timeout=20), f"container not ready: {lines.text}"
            address = parse_eth0(lines.text)
            ip = str(address.ip)
            assert address.ip in POD_CIDR

            # The agent lists the endpoint for ctr's container, in the task's netns.
            [endpoint] = endpoints_of(agent, "c2")
            tasks = {
                row.split()[0]: row.split()[1]
                for row in ctrd.ctr("tasks", "ls").stdout.splitlines()[1:]
                if row.strip()
            }
            assert endpoint["ifname"] == "eth0"
            assert endpoint["ipv4"] == ip
            assert endpoint["state"] == "ready"
            assert endpoint["netns"] == f"/proc/{tasks['c2']}/ns/net"
            status = agent.get("/v1/status")
            assert status["ipam"]["allocated"] == before + 1
            assert status["ipam"]["addresses"].get(ip) is not None
            assert node_link_exists(endpoint["hostIfname"])
            assert result_cache("c2").exists()

            # The node reaches the container.
            pinged = ping_from_node(ip)
            assert pinged.returncode == 0, pinged.stdout + pinged.stderr

            ctrd.ctr("tasks", "kill", "c2")  # SIGTERM: the trap exits 0
            rc = proc.wait(timeout=30)
            lines.join()
            assert rc == 0, f"ctr run exited {rc}: {lines.text}"
        finally:
            if proc.poll() is None:
                ctrd.ctr("tasks", "kill", "-s", "SIGKILL", "c2", check=False)
                proc.wait(timeout=30)
            lines.join()
    assert_gone(ctrd, agent, "c2", before)
    assert not node_link_exists(endpoint["hostIfname"])


def test_detached_run_needs_our_own_del(ctrd: Containerd, agent: AgentClient) -> None:
    """``ctr run -d`` never runs DEL (feasibility §3, pitfall 3): run it as libcni would."""
    before = allocated(agent)
    ctrd.ctr("run", "-d", "--cni", IMAGE, "c3", "sleep", "120")
    try:
        [endpoint] = endpoints_of(agent, "c3")
        pinged = ping_from_node(endpoint["ipv4"])
        assert pinged.returncode == 0, pinged.stdout + pinged.stderr
        cached = json.loads(result_cache("c3").read_text())
    finally:
        ctrd.ctr("tasks", "rm", "-f", "c3", check=False)
        ctrd.ctr("containers", "rm", "c3", check=False)
    # The task and its netns are gone, but nothing told the agent.
    assert len(endpoints_of(agent, "c3")) == 1
    assert allocated(agent) == before + 1

    # DEL as libcni sends it: the plugin's entry with name and cniVersion, the cached
    # result as prevResult, and no netns (the container is gone).
    conf = {**PLUGIN_CONF, "cniVersion": "1.0.0", "name": NETWORK}
    if isinstance(cached.get("result"), dict):
        conf["prevResult"] = cached["result"]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": "DEL",
        "CNI_CONTAINERID": cni_container_id("c3"),
        "CNI_NETNS": "",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": f"{CNI_BIN}:/usr/lib/cni",
    }
    done = subprocess.run(
        [str(PLUGIN)],
        input=json.dumps(conf, sort_keys=True),
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""
    result_cache("c3").unlink()  # libcni removes its cache entry after a DEL
    assert_gone(ctrd, agent, "c3", before)
    assert not node_link_exists(endpoint["hostIfname"])
