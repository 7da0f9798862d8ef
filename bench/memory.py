"""The memory and CPU time of process trees, read from /proc (Linux; stdlib only)."""

import os
from pathlib import Path

PROC = Path("/proc")


def children(pid: int) -> list[int]:
    """The direct children of a process (every thread's, as /proc lists them per thread)."""
    found: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").glob("*/children"))
    except OSError:  # the process ended meanwhile
        return found
    for task in tasks:
        try:
            found += [int(child) for child in task.read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return found


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += children(current)
    return pids


def rss_kib(pid: int) -> int:
    """Resident memory of one process (VmRSS), in KiB; 0 once it is gone."""
    try:
        status = (PROC / str(pid) / "status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0  # a zombie has no VmRSS


def tree_rss_mib(pid: int) -> float:
    """Resident memory of the process and its descendants together, in MiB."""
    return sum(rss_kib(p) for p in tree(pid)) / 1024


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user and system) the process and its descendants have used so far."""
    return sum(cpu_seconds_by_process(pid).values())


def cpu_seconds_by_process(pid: int) -> dict[int, float]:
    """CPU time (user and system) each of the process and its descendants has used so far."""
    found = {}
    for each in tree(pid):
        try:
            fields = (PROC / str(each) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        found[each] = ticks / os.sysconf("SC_CLK_TCK")
    return found


def parent(pid: int) -> int:
    return int((PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
