"""Worker processes never outlive the process that started them (issue 18, item 3)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone_within(pids, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.2)
    return False


pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def test_a_watched_process_ends_when_its_parent_is_killed():
    # The parent's pid is passed to the child, as the pool passes it, and the child itself says
    # when its watch runs: a child scheduled late must not take its new parent for the old one.
    script = ("import os, time, sys\n"
              "from skinaudit._workers import die_with_parent\n"  # imported before the fork, as in a pool
              "parent = os.getpid()\n"
              "pid = os.fork()\n"
              "if pid == 0:\n"
              "    die_with_parent(parent, poll=0.1)\n"
              "    print(os.getpid(), flush=True)\n"
              "    time.sleep(60)\n"
              "    os._exit(0)\n"
              "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    with proc.stdout:
        child = int(proc.stdout.readline())
    assert _alive(child)
    proc.kill()
    proc.wait()
    assert _gone_within([child], 5.0), "the child outlived its killed parent"


def test_inspect_workers_end_within_15_s_of_a_sigkill(shared_data, tmp_path):
    folder = shared_data("isic2018-task3-test-224")
    proc = subprocess.Popen(
        [sys.executable, "-m", "skinaudit.cli", "inspect", "--data", "isic", "--images", str(folder / "images"),
         "--labels", str(folder / "ISIC2018_Task3_Test_GroundTruth.csv"), "--jobs", "2", "--no-sensitivity",
         "--out", str(tmp_path / "out")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1], env={**os.environ, "OMP_NUM_THREADS": "1"})
    workers, end = [], time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.2)
        workers = _children(proc.pid)
    assert len(workers) >= 2, "the run ended before its workers could be seen"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _gone_within(workers, 15.0), f"workers {workers} still alive 15 s after the main process was killed"
    assert not (tmp_path / "out").exists()
