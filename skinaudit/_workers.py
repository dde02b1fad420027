"""Worker processes never outlive the audit that started them.

A SIGKILL of the main ``skinaudit`` process (an out-of-memory kill, a cluster scheduler, a
``kill -9``) gives it no chance to stop its process pool: the workers, re-parented to init,
used to run on for minutes. :func:`die_with_parent`, called in each worker when it starts,
watches the parent from a daemon thread and ends the worker as soon as the parent is gone
(its parent id changes). A polling thread rather than Linux's ``PR_SET_PDEATHSIG``: that
signal fires when the *thread* that forked the worker exits, which in a library embedded in
a threaded program can be long before the audit ends.
"""
from __future__ import annotations

import os
import threading
import time

__all__ = ["die_with_parent", "POLL_SECONDS"]

#: How often a worker checks that its parent is alive (seconds).
POLL_SECONDS = 0.5


def die_with_parent(parent: int | None = None, poll: float = POLL_SECONDS) -> threading.Thread:
    """Start a daemon thread that ends this process (``os._exit``) once its parent is gone.

    ``parent``: the pid of the process that started this one, passed by the parent itself
    (the pool's ``initargs``), so a parent killed before this worker finished starting is
    noticed too; default the current parent."""
    parent = os.getppid() if parent is None else int(parent)
    if os.getppid() != parent:
        os._exit(1)  # the parent died while this worker was starting

    def watch():
        while True:
            time.sleep(poll)
            if os.getppid() != parent:
                os._exit(1)

    thread = threading.Thread(target=watch, name="skinaudit-parent-watch", daemon=True)
    thread.start()
    return thread
