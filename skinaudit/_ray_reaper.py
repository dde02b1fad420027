"""The guard of a local Ray cluster started by skinaudit: ``python -I .../skinaudit/_ray_reaper.py PID``
(standard library only: run as a file, it does not import the package).

Ray ties its GCS server and raylet to the driver that started them (they die with it) and its
workers to the raylet, but a SIGKILL of the driver left its dashboard and runtime-env agents
running for good (they hang flushing logs to the dead GCS; measured with Ray 2.60). This
process, started by :class:`skinaudit.executors.RayExecutor` in a session of its own, notes
every Ray process under the driver while the driver lives (pid and start time, so a reused pid
is never hit), and once the driver is gone kills them all (SIGKILL) and exits. A normal end of
the audit stops the cluster with ``ray.shutdown()`` and then this process.
"""
from __future__ import annotations

import os
import signal
import sys
import time

#: Seconds between two looks at the process table.
POLL_SECONDS = 0.5


def _stat(pid: int):
    """``(ppid, start time)`` of a live process, else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == b"Z":
        return None
    return int(fields[1]), int(fields[19])


def _is_ray(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"ray" in fh.read()
    except OSError:
        return False


def _descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live process below ``root``."""
    children: dict[int, list[tuple[int, int]]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                children.setdefault(st[0], []).append((int(name), st[1]))
    found, todo = {}, [root]
    while todo:
        for child, start in children.get(todo.pop(), ()):
            if child not in found and child != os.getpid():
                found[child] = start
                todo.append(child)
    return found


def watch(driver: int, poll: float = POLL_SECONDS) -> None:
    """Note the Ray processes under ``driver`` until it is gone, then kill them."""
    first = _stat(driver)
    if first is None:
        return
    started = first[1]
    seen: dict[int, int] = {}
    while True:
        st = _stat(driver)
        if st is None or st[1] != started:
            break
        for pid, start in _descendants(driver).items():
            if pid not in seen and _is_ray(pid):
                seen[pid] = start
        time.sleep(poll)
    for _ in range(3):  # a process may be starting a child as it goes: look again
        for pid, start in list(seen.items()):
            st = _stat(pid)
            if st is not None and st[1] == start:
                for child, cstart in _descendants(pid).items():
                    seen.setdefault(child, cstart)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        time.sleep(0.2)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
