"""A new user's machine has Python and pip but no uv on PATH: the Makefile finds the uv it
installs itself, CI hides any other uv, and no test or script calls a tool by bare name
that the project does not put on PATH itself."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.deploy.project import ROOT

CI_RUN = ROOT / ".ci" / "run"


def _executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> None:
    path.write_text(text)
    path.chmod(0o755)


def _bin_folder_without_uv(tmp_path: Path) -> Path:
    """A folder holding the machine's python3 and make (not the venv's), as on a machine
    where uv was never installed."""
    folder = tmp_path / "bin"
    folder.mkdir()
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    for tool in ("make", "bash", "sh", "env"):
        found = shutil.which(tool, path=path)
        assert found, tool
        (folder / tool).symlink_to(found)
    # The interpreter itself: a pyenv shim would need pyenv on PATH.
    (folder / "python3").symlink_to(Path(sys.base_prefix, "bin", "python3"))
    return folder


def test_make_runs_the_uv_it_installs_when_none_is_on_path(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": str(_bin_folder_without_uv(tmp_path)), "HOME": str(home)}

    printed = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "print-uv"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    user_base = subprocess.run(
        [str(Path(env["PATH"], "python3")), "-c", "import site; print(site.getuserbase())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert printed == f"{user_base}/bin/uv"
    assert printed.startswith(str(home)), "pip --user installs under HOME, where make looks"


def test_ci_hides_every_uv_on_path_but_keeps_the_tools_beside_it(tmp_path: Path) -> None:
    beside_python = _bin_folder_without_uv(tmp_path)
    _executable(beside_python / "uv")
    _executable(beside_python / "uvx")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _executable(elsewhere / "uv")
    function = re.search(r"^hide_uv_from_path\(\) \{\n.*?^\}\n", CI_RUN.read_text(), re.M | re.S)
    assert function, "the function .ci/run calls"
    script = (
        f"{function.group(0)}"
        "hide_uv_from_path\n"
        "command -v uv uvx || echo 'no uv'\n"
        "command -v python3 make\n"
    )

    shown = subprocess.run(
        ["/bin/bash", "-c", script],
        env={"PATH": f"{elsewhere}:{beside_python}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()

    assert shown[0] == "no uv"
    assert [Path(tool).name for tool in shown[1:]] == ["python3", "make"]


# A subprocess whose program is a literal tool name, as in ["uv", "run", ...] or
# create_subprocess_exec("herald", ...): found on PATH, so it works only where the
# developer's PATH happens to have it.
BARE_PROGRAM = re.compile(
    r"(?:Popen|run|call|check_call|check_output|create_subprocess_exec)\(\s*\[?\s*"
    r"\"(uv|uvx|herald[\w-]*|pytest|python3?|schemathesis|ruff|mypy|alembic)\""
)


def test_no_test_or_script_starts_a_python_tool_by_bare_name() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)!r}"
        for folder in ("tests", "bench", "services", "libs")
        for path in (ROOT / folder).rglob("*.py")
        if ".venv" not in path.parts and path != Path(__file__)
        for match in BARE_PROGRAM.finditer(path.read_text())
    ]
    assert offenders == [], "start these through the venv's bin/ (bench.system.BIN)"


def test_the_bare_name_check_catches_the_calls_that_broke_a_new_machine() -> None:
    for call in (
        'subprocess.Popen(["uv", "run", "--no-sync", "herald-probe-stub"])',
        'asyncio.create_subprocess_exec(\n    "uv", "run", "--no-sync", "herald", *args,',
        'subprocess.run(["herald", "api-key", "list"])',
    ):
        assert BARE_PROGRAM.search(call), call
    assert not BARE_PROGRAM.search('subprocess.run([str(BIN / "herald"), "api-key"])')
