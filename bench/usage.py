"""CPU and memory of groups of processes over a measured window, sampled in the background.

A group is a way to find pids (herald's services, the PostgreSQL backends of the run's
database, RabbitMQ). A pid seen at the window's start counts from its CPU then; a pid
that appears later (a new backend) counts from zero, and one that exits keeps what it
had at its last sample.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import machine

PidFinder = Callable[[], list[int]]


@dataclass
class _PidUsage:
    start_cpu: float
    last_cpu: float
    peak_rss_mib: float


@dataclass
class GroupUsage:
    """What one group of processes used during the window."""

    cpu_seconds: float
    peak_rss_mib: float
    processes: int


@dataclass
class UsageTracker:
    """Samples every group each ``interval`` seconds between :meth:`start` and :meth:`stop`.

    ``on_sample`` runs after each sample (the runs use it to sample the stub too).
    """

    groups: dict[str, PidFinder]
    interval: float = 1.0
    on_sample: Callable[[float], None] | None = None
    _seen: dict[str, dict[int, _PidUsage]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    started_at: float = 0.0
    stopped_at: float = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, name="usage-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, GroupUsage]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample(first=False)
        self.stopped_at = time.monotonic()
        return self.totals()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample(first=False)

    def _sample(self, *, first: bool) -> None:
        with self._lock:
            for group, find in self.groups.items():
                seen = self._seen.setdefault(group, {})
                for pid in find():
                    now = machine.usage(pid)
                    if now is None:
                        continue
                    known = seen.get(pid)
                    if known is None:
                        seen[pid] = _PidUsage(
                            start_cpu=now.cpu_seconds if first else 0.0,
                            last_cpu=now.cpu_seconds,
                            peak_rss_mib=now.peak_rss_mib,
                        )
                    else:
                        known.last_cpu = now.cpu_seconds
                        known.peak_rss_mib = max(known.peak_rss_mib, now.peak_rss_mib)
        if self.on_sample is not None:
            self.on_sample(time.monotonic())

    def totals(self) -> dict[str, GroupUsage]:
        with self._lock:
            return {
                group: GroupUsage(
                    cpu_seconds=round(sum(p.last_cpu - p.start_cpu for p in seen.values()), 3),
                    peak_rss_mib=round(max((p.peak_rss_mib for p in seen.values()), default=0), 1),
                    processes=len(seen),
                )
                for group, seen in self._seen.items()
            }


def as_json(totals: dict[str, GroupUsage]) -> dict[str, Any]:
    return {
        group: {
            "cpu_seconds": usage.cpu_seconds,
            "peak_rss_mib": usage.peak_rss_mib,
            "processes": usage.processes,
        }
        for group, usage in totals.items()
    }
