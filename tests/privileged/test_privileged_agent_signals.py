"""The agent stops on SIGTERM even while it waits for a store that is down."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


def test_sigterm_while_waiting_for_the_store(privileged: None, tmp_path: Path) -> None:
    netns = f"axt-term-{tmp_path.name[-8:]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        agent = subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{netns}",
                sys.executable,
                "-m",
                "axoneme.agent.daemon",
                "--node",
                "n1",
                "--store",
                "http://127.0.0.1:1",
                "--state-dir",
                str(tmp_path / "state"),
                "--socket",
                str(tmp_path / "a.sock"),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)
        assert agent.poll() is None  # still waiting for a pod CIDR
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=10)
        assert agent.returncode == 0, err
        assert "stopped before a pod CIDR was known" in err
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
