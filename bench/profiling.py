"""py-spy profiles of running services, and a summary of where their CPU time goes.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;frame count``).
The summary attributes each sample to the innermost frame ("self") and to every frame on
its stack ("total"), by function and by the package the frame's file belongs to.
"""

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_SITE = re.compile(r".*/(?:site-packages|dist-packages)/")
_STDLIB = re.compile(r".*/lib/python3\.\d+/")
_WORKSPACE = re.compile(r".*/src/")


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


@dataclass
class Recording:
    name: str
    path: Path
    process: subprocess.Popen[bytes]

    def wait(self, timeout: float) -> bool:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=10)
        return self.path.exists() and self.path.stat().st_size > 0


def record(name: str, pid: int, out_dir: Path, seconds: int, rate: int = 100) -> Recording | None:
    """Start sampling ``pid`` for ``seconds`` (non-blocking: the process is never paused)."""
    binary = py_spy()
    if binary is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.collapsed.txt"
    process = subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--nonblocking",
            # Only samples that hold the GIL: Python at work, not waiting in epoll.
            "--gil",
            "--format",
            "raw",
            "--output",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(out_dir / f"{name}.py-spy.log").open("wb"),
    )
    return Recording(name, path, process)


def module_of(file: str) -> str:
    """The top-level package (or stdlib module) a frame's file belongs to."""
    for pattern, prefix in ((_SITE, ""), (_WORKSPACE, ""), (_STDLIB, "stdlib:")):
        match = pattern.match(file)
        if match:
            rest = file[match.end() :]
            return prefix + rest.split("/")[0].removesuffix(".py")
    return file.split("/")[0].removesuffix(".py") or file


def _frame(text: str) -> tuple[str, str]:
    """(function label, package) of one collapsed-stack frame."""
    match = _FRAME.match(text)
    if match is None:
        return text, "?"
    file = match.group("file")
    short = _SITE.sub("", _WORKSPACE.sub("", _STDLIB.sub("", file)))
    return f"{match.group('function')} ({short})", module_of(file)


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    """Self and total shares of the busiest functions and packages in a collapsed profile."""
    samples = 0
    self_fn: Counter[str] = Counter()
    total_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    total_pkg: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f[0].startswith("thread ")]
        if not frames:
            continue
        samples += count
        self_fn[frames[-1][0]] += count
        self_pkg[frames[-1][1]] += count
        for function in {f[0] for f in frames}:
            total_fn[function] += count
        for package in {f[1] for f in frames}:
            total_pkg[package] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(key, round(100 * n / samples, 1)) for key, n in counter.most_common(top)]

    return {
        "samples": samples,
        "self_by_package": shares(self_pkg) if samples else [],
        "total_by_package": shares(total_pkg) if samples else [],
        "self_by_function": shares(self_fn) if samples else [],
        "total_by_function": shares(total_fn) if samples else [],
    }
