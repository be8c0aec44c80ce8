"""Worker processes that end with their parent (Linux ``prctl(PR_SET_PDEATHSIG)``).

``nalu-table --jobs N`` trains in spawned worker processes. A parent killed by a signal (``kill PID``, a
batch system's time limit) exits without shutting its process pool down, and its workers would go on
training, hours of CPU, as orphans. :func:`die_with_parent`, called first in a worker, asks the kernel to
send the worker SIGTERM when its parent dies. On other systems it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> bool:
    """End this process (SIGTERM) when ``parent_pid``, its parent, dies; at once if it already has.
    Returns whether the request is in place (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
    return True
