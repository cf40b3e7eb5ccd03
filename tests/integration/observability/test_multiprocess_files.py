"""The upkeep of PROMETHEUS_MULTIPROC_DIR: dead workers' live gauges go, earlier runs' files go."""

import os
import subprocess
import sys
from pathlib import Path

from herald_common.metrics import clear_multiprocess_dir, forget_dead_processes


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_bytes(b"")


def test_a_dead_workers_live_gauges_are_forgotten_and_its_counters_kept(tmp_path: Path) -> None:
    dead, alive = dead_pid(), os.getpid()
    touch(
        tmp_path,
        f"gauge_livesum_{dead}.db",
        f"gauge_livemax_{dead}.db",
        f"counter_{dead}.db",
        f"gauge_livesum_{alive}.db",
        f"gauge_mostrecent_{dead}.db",
    )

    assert forget_dead_processes(str(tmp_path)) == [dead]

    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [f"counter_{dead}.db", f"gauge_livesum_{alive}.db", f"gauge_mostrecent_{dead}.db"]
    )


def test_clearing_keeps_only_this_processs_files(tmp_path: Path) -> None:
    own = os.getpid()
    touch(tmp_path, f"counter_{own}.db", "counter_1.db", "histogram_2.db", "notes.txt")

    clear_multiprocess_dir(str(tmp_path))

    assert sorted(path.name for path in tmp_path.iterdir()) == [f"counter_{own}.db", "notes.txt"]
