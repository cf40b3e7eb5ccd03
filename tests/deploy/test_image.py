"""deploy/Dockerfile: a slim, unprivileged image of every console script, built from the lock.

No Docker engine runs here, so the builder stage's steps are replayed with uv on this
machine, offline from uv's cache: the same COPY layout, the same uv commands and ENV.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy import yaml12
from tests.deploy.dockerfile import Stage, final_stage, in_build_context, stages
from tests.deploy.project import ROOT, console_scripts

DEV_ONLY_PACKAGES = ("pytest", "mypy", "ruff", "kubernetes_validate")


def test_two_stages_on_slim_python_3_11() -> None:
    assert list(stages()) == ["builder", "runtime"]
    for stage in stages().values():
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base), stage.base


def test_uv_comes_from_pypi_at_the_version_ci_pins() -> None:
    builder = stages()["builder"]
    (install,) = (run for run in builder.all("RUN") if "pip install" in run.arguments)
    assert '"uv==${UV_VERSION}"' in install.arguments
    (version,) = (a.arguments for a in builder.all("ARG") if a.arguments.startswith("UV_VERSION="))
    pinned = version.partition("=")[2]
    gitlab = yaml12.load((ROOT / ".gitlab-ci.yml").read_text())
    github = yaml12.load((ROOT / ".github/workflows/ci.yml").read_text())
    assert gitlab["variables"]["UV_VERSION"] == github["env"]["UV_VERSION"] == pinned


def test_the_lock_is_installed_as_is_without_dev_dependencies() -> None:
    syncs = [
        run.words() for run in stages()["builder"].all("RUN") if run.arguments.startswith("uv ")
    ]
    assert syncs, "the builder runs uv sync"
    for words in syncs:
        assert words[:2] == ["uv", "sync"]
        assert {"--frozen", "--no-dev"} <= set(words), words
    assert "--no-editable" in syncs[-1], "the runtime stage gets no source tree to point at"


def test_the_runtime_runs_unprivileged_with_every_script_on_path() -> None:
    runtime = final_stage()
    (user,) = runtime.all("USER")
    uid, _, gid = user.arguments.partition(":")
    # Numeric and not root, so that Kubernetes' runAsNonRoot can check it.
    assert int(uid) > 0
    assert int(gid) > 0
    assert [c.arguments for c in runtime.all("COPY")] == ["--from=builder /app/.venv /app/.venv"]
    assert runtime.env()["PATH"].startswith("/app/.venv/bin:")
    assert runtime.env()["HERALD_API_HOST"] == "0.0.0.0"  # noqa: S104
    assert runtime.all("HEALTHCHECK") == [], "compose and Kubernetes do the health checks"
    assert runtime.all("CMD")[0].exec_form()[0] in console_scripts()


def test_the_build_context_holds_what_the_build_copies_and_nothing_private() -> None:
    for copy in stages()["builder"].all("COPY"):
        *sources, _ = copy.words()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert in_build_context(Path(source)), f"{source} is excluded by .dockerignore"
    for private in (".env", ".venv/bin/python", "tests/conftest.py", ".git/HEAD"):
        assert not in_build_context(Path(private)), private
    for cached in ("services/api/src/herald_api/__pycache__/x.pyc", "libs/common/.venv/x"):
        assert not in_build_context(Path(cached)), cached


def _replay_builder(builder: Stage, context: Path, venv: Path) -> None:
    """Run the stage's COPY and uv steps here: its ENV, offline, into ``venv``."""
    workdir = context / "src"
    # uv's own settings of this machine stay (UV_CACHE_DIR in CI); the stage's ENV wins.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(builder.env())
    env.pop("UV_NO_CACHE")  # the only way to be offline is uv's cache of this machine
    env.update(UV_PROJECT_ENVIRONMENT=str(venv), UV_PYTHON=sys.executable, UV_OFFLINE="1")
    # Bytecode compiling takes most of the time on two cores and proves nothing here.
    env.update(UV_COMPILE_BYTECODE="0", UV_LINK_MODE="hardlink")
    # `uv run` (so `make test`) names itself in UV; uv need not be on PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "run the tests with `make test`: uv run sets UV"
    for instruction in builder.instructions:
        if instruction.keyword == "COPY":
            *sources, target = instruction.words()
            for source in sources:
                destination = workdir / target
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source,
                        destination,
                        dirs_exist_ok=True,
                        ignore=lambda folder, names: [
                            name for name in names if not in_build_context(Path(folder, name))
                        ],
                    )
                else:
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / source, destination)
        elif instruction.keyword == "RUN" and instruction.arguments.startswith("uv "):
            subprocess.run(
                [uv, *instruction.words()[1:]],
                cwd=workdir,
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )


@pytest.mark.timeout(180)
def test_the_builder_steps_produce_every_console_script(tmp_path: Path) -> None:
    venv = tmp_path / "app" / ".venv"
    _replay_builder(stages()["builder"], tmp_path / "context", venv)

    for script in console_scripts():
        assert (venv / "bin" / script).is_file(), script
    site_packages = next(venv.glob("lib/python3*/site-packages"))
    for package in DEV_ONLY_PACKAGES:
        assert not (site_packages / package).exists(), f"dev dependency {package} in the image"
    assert (site_packages / "herald_common/db/migrations/versions").is_dir()
    assert not list(site_packages.glob("*.pth")), "herald is installed as wheels, not editable"
    # Imported from the venv's own site-packages, not from this checkout's sources.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import herald_common; print(herald_common.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site_packages)
