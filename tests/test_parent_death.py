"""A spawned worker ends when its parent is killed (``parent_death``, used by ``nalu-table --jobs``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PARENT = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from nalu_suite.parent_death import die_with_parent

    def child(parent_pid, protect):
        if protect:
            die_with_parent(parent_pid)
        time.sleep(60)

    if __name__ == "__main__":
        process = multiprocessing.get_context("spawn").Process(
            target=child, args=(os.getpid(), sys.argv[1] == "protect")
        )
        process.start()
        print(process.pid, flush=True)
        time.sleep(60)
    """
)


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" not in "\n" + status.read_text()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
@pytest.mark.parametrize("protect", [True, False])
def test_a_worker_ends_with_its_killed_parent_only_when_asked(tmp_path, protect):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), "protect" if protect else "plain"], stdout=subprocess.PIPE, text=True
    )
    child = int(parent.stdout.readline())
    time.sleep(2)  # the child has imported and made its request
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 4
    while _alive(child) and time.time() < deadline:
        time.sleep(0.1)
    try:
        assert _alive(child) is not protect
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
