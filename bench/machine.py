"""What the benchmark reads from /proc: CPU seconds and peak memory of processes, the load
average, PostgreSQL backends of one database, and a description of the machine."""

import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
# A backend's title: "postgres: [cluster: ]user database host(port) state".
_BACKEND_TITLE = re.compile(r"postgres: (\S+: )?\S+ \S+ \S+\(")


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """CPU seconds (user + system) so far, and resident memory now and at its peak (MiB)."""

    cpu_seconds: float
    rss_mib: float
    peak_rss_mib: float


def usage(pid: int) -> ProcessUsage | None:
    """The process's usage, or None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return ProcessUsage(
        cpu_seconds=(utime + stime) / CLOCK_TICKS,
        rss_mib=_status_kib(status, "VmRSS") / 1024,
        peak_rss_mib=_status_kib(status, "VmHWM") / 1024,
    )


def _status_kib(status: str, key: str) -> float:
    match = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def postgres_backends(database: str) -> list[int]:
    """Backends serving ``database``: PostgreSQL titles them ``postgres: <user> <db> <addr>``."""
    marker = f" {database} "
    return [
        pid
        for pid in _pids()
        if (title := _cmdline(pid)).startswith("postgres: ") and marker in title
    ]


def postgres_shared_processes() -> list[int]:
    """PostgreSQL's own processes (postmaster, WAL writer, checkpointer, ...), shared by every
    database on the server: their CPU is not ours alone."""
    shared = []
    for pid in _pids():
        title = _cmdline(pid)
        backend = _BACKEND_TITLE.match(title) is not None
        if (title.startswith("postgres: ") and not backend) or "/bin/postgres " in title:
            shared.append(pid)
    return shared


def rabbitmq_pids() -> list[int]:
    """The Erlang VM that runs the RabbitMQ node (shared by every vhost on the broker); not
    the short-lived VMs of rabbitmqctl."""
    return [
        pid
        for pid in _pids()
        if "beam.smp" in (title := _cmdline(pid)) and "-s rabbit boot" in title
    ]


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def describe() -> dict[str, object]:
    """The machine the figures come from."""
    model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        found = re.search(r"^Model name:\s+(.+)$", lscpu, re.MULTILINE)
        if found:
            model = found.group(1).strip()
    except OSError:
        pass
    memory = _status_kib(Path("/proc/meminfo").read_text(), "MemTotal")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory / MIB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": _version(["psql", "--version"]).removeprefix("psql (PostgreSQL) "),
        "rabbitmq": _version(["rabbitmqctl", "version"]),
    }


def _version(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "unknown"
