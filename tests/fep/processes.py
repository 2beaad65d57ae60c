"""`fep run` as a separate process, for the tests that interrupt it: start it in its own process group, wait for a
leg in production (read from the run's store), list and reap what is left of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _default_signals() -> None:  # pragma: no cover - runs in the child before exec
    # as a terminal's foreground job: Ctrl-C and SIGTERM at their defaults, whatever this test process (a library
    # used by an earlier test) set them to; an ignored SIGINT would be inherited, and Python then never raises
    # KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start_fep(args: list[str], stderr=subprocess.PIPE) -> subprocess.Popen:
    """``python -m fep ARGS`` in its own process group (as a shell gives a foreground job)."""
    return subprocess.Popen(
        [sys.executable, "-m", "fep", *args],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        env=os.environ.copy(),
        preexec_fn=_default_signals,
    )


def running_jobs(run_dir: Path) -> list[dict]:
    """The store's job rows of the run in ``run_dir`` ([] while there is no store or it is being created)."""
    from fep.execution.store import open_store

    if not (run_dir / "mlfep.sqlite").exists():
        return []
    try:
        store = open_store(run_dir)
        try:
            runs = store.list_runs()
            return store.run_jobs(runs[0]["id"]) if runs else []
        finally:
            store.close()
    except Exception:  # the driver is still creating it
        return []


def wait_for_production(
    run_dir: Path, proc: subprocess.Popen, n_iterations: int, min_done: int = 2, timeout_s: float = 600
) -> tuple[int, int]:
    """Block until a leg is in production with ``min_done`` to ``n_iterations - 1`` iterations done; returns
    (worker pid, iterations done)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        running = [
            j
            for j in running_jobs(run_dir)
            if j["phase"] == "production" and min_done <= (j["done"] or 0) < n_iterations and j["worker"]
        ]
        if running:
            return int(running[0]["worker"].rsplit(":", 1)[1]), int(running[0]["done"])
    stderr = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"the run never reached production (exit {proc.poll()}): {stderr}")


def group_members(pgid: int) -> list[str]:
    """Live (not zombie) processes of process group ``pgid``, as 'pid command'."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")[:120]
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(f"{pid} {command}")
    return out


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (zombies count as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def gone_within(check: Callable[[], bool], seconds: float) -> float | None:
    """Seconds until ``check()`` turned false, or None if it stayed true for ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not check():
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL whatever is left of ``proc``'s process group and reap ``proc``."""
    if group_members(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
