"""``python -m axoneme.lab.leakcheck``: fail if anything a lab or a test made is still here.

Run by ``make test`` after the suite. It looks for the marks every lab and
test object carries: namespaces named ``axn-``/``axt-``/``axb-``, processes
marked ``AXONEME_LAB``, the lab directory, and ``lxc``/``axn`` links in the
machine's own namespace (where nothing of ours should ever be).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pyroute2 import IPRoute

from axoneme.lab.control import lab_processes
from axoneme.lab.topology import CGROUP_ROOT, LAB_DIR

PREFIXES = ("axn-", "axt-", "axb-")
LINK_PREFIXES = ("lxc", "axn", "axt", "axb")


def findings() -> list[str]:
    found = []
    netns_dir = "/run/netns"
    names = sorted(os.listdir(netns_dir)) if os.path.isdir(netns_dir) else []
    found += [f"network namespace {n}" for n in names if n.startswith(PREFIXES)]
    found += [f"process {pid}" for pid in lab_processes()]
    if LAB_DIR.exists():
        found.append(f"directory {LAB_DIR}")
    if CGROUP_ROOT.exists():
        found.append(f"cgroup {CGROUP_ROOT}")
    bpffs = Path("/sys/fs/bpf")
    if bpffs.is_dir():
        found += [
            f"pinned BPF object {p}"
            for p in sorted(bpffs.iterdir())
            if p.name.startswith(("axoneme-lab", "axt-", "axb-"))
        ]
    with IPRoute() as ipr:
        links = [str(link.get("IFLA_IFNAME")) for link in ipr.get_links()]
    found += [
        f"link {name} in the root namespace" for name in links if name.startswith(LINK_PREFIXES)
    ]
    return found


def clean_test_namespaces() -> list[str]:
    """Remove namespaces a crashed test or benchmark left (the lab's own go with ``lab down``)."""
    from axoneme.lab.netsetup import NETNS_DIR

    removed = []
    names = os.listdir(NETNS_DIR) if NETNS_DIR.is_dir() else []
    for name in names:
        if name.startswith(("axt-", "axb-")):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
            removed.append(name)
    return removed


def main() -> None:
    if "--clean" in sys.argv[1:]:
        for name in clean_test_namespaces():
            print(f"removed stale test namespace {name}")
        return
    left = findings()
    if left:
        print("leak check FAILED; left behind:\n  " + "\n  ".join(left))
        sys.exit(1)
    print("leak check: nothing left behind")


if __name__ == "__main__":
    main()
