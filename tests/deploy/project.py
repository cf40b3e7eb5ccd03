"""What the project itself declares: console scripts, and the HERALD_* variables each reads.

The deployment files are checked against these, so that a renamed script or setting
breaks a test instead of a deploy.
"""

import argparse
import importlib
import pkgutil
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"


@dataclass(frozen=True)
class ConsoleScript:
    name: str
    target: str  # "package.module:function"

    @property
    def package(self) -> str:
        return self.target.partition(":")[0].partition(".")[0]


@cache
def console_scripts() -> dict[str, ConsoleScript]:
    """Every ``[project.scripts]`` entry of the workspace members."""
    scripts: dict[str, ConsoleScript] = {}
    for manifest in sorted(
        [*ROOT.glob("services/*/pyproject.toml"), *ROOT.glob("libs/*/pyproject.toml")]
    ):
        project = tomllib.loads(manifest.read_text())["project"]
        for name, target in project.get("scripts", {}).items():
            scripts[name] = ConsoleScript(name, target)
    return scripts


def _subclasses(cls: type[BaseSettings]) -> Iterator[type[BaseSettings]]:
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


@cache
def settings_classes(package: str) -> tuple[type[BaseSettings], ...]:
    """The BaseSettings classes a package defines or builds on, after importing all of it."""
    root = importlib.import_module(package)
    for module in pkgutil.walk_packages(root.__path__, f"{package}."):
        importlib.import_module(module.name)
    found = {cls for cls in _subclasses(BaseSettings) if cls.__module__.split(".")[0] == package}
    for cls in list(found):
        found.update(
            base
            for base in cls.__mro__
            if isinstance(base, type)
            and issubclass(base, BaseSettings)
            and base is not BaseSettings
        )
    return tuple(sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}"))


def settings_env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Environment variable name -> field name, as pydantic-settings reads them."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        names[(alias or f"{prefix}{field_name}").upper()] = field_name
    return names


class _RecordingEnviron(Mapping[str, str]):
    """An empty environment that remembers which names were looked up."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@cache
def stub_env_names() -> frozenset[str]:
    """HERALD_STUB_* names the probe stub reads: it maps flags to variables in argparse."""
    from herald_probe_stub.main import build_parser, parse_options

    environ = _RecordingEnviron()
    parse_options(build_parser(environ), [], environ)
    return frozenset(environ.asked)


def parse_stub_options(argv: list[str], environ: Mapping[str, str]) -> argparse.Namespace:
    """The stub's own parsing of flags and HERALD_STUB_* values; SystemExit when invalid."""
    from herald_probe_stub.main import build_parser, parse_options

    return parse_options(build_parser(environ), argv, environ)


def env_names_read_by(script: str) -> frozenset[str]:
    """Every HERALD_* variable the console script's package reads."""
    package = console_scripts()[script].package
    if package == "herald_probe_stub":
        return stub_env_names()
    names: set[str] = set()
    for cls in settings_classes(package):
        names.update(settings_env_names(cls))
    return frozenset(names)
