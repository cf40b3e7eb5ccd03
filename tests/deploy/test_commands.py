"""Every command the deployment runs is a real console script with valid arguments, and
every HERALD_* variable it sets is one the service reads, with a value it accepts."""

import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any

import pytest
from pydantic import ValidationError

from tests.deploy import kustomize
from tests.deploy.compose_file import APP_SERVICES, service_command, service_environment
from tests.deploy.dockerfile import final_stage
from tests.deploy.kustomize import Container, containers, find
from tests.deploy.project import (
    console_scripts,
    env_names_read_by,
    parse_stub_options,
    settings_classes,
)

Resources = tuple[dict[str, Any], ...]


def _entry(script: str) -> Callable[..., None]:
    (entry,) = entry_points(group="console_scripts", name=script)
    loaded: Callable[..., None] = entry.load()
    return loaded


def _commands(services: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    for name in APP_SERVICES:
        yield f"compose {name}", service_command(services[name])
    for kustomization in kustomize.KUSTOMIZATIONS.values():
        for container in containers(kustomize.build(kustomization)):
            yield container.name, container.argv
    yield "Dockerfile CMD", final_stage().all("CMD")[0].exec_form()


def _accepts_arguments(script: str) -> bool:
    return bool(inspect.signature(_entry(script)).parameters)


def _check_arguments(script: str, arguments: list[str]) -> int:
    """Exit code of the script's own parser on ``arguments --help`` (0: valid)."""
    with pytest.raises(SystemExit) as exit_:
        _entry(script)([*arguments, "--help"])
    return int(exit_.value.code or 0)


def test_every_command_is_a_console_script(services: dict[str, Any]) -> None:
    for where, argv in _commands(services):
        assert argv, f"{where} relies on the image's default command"
        assert argv[0] in console_scripts(), f"{where}: {argv[0]} is no console script"
        assert callable(_entry(argv[0])), where


def test_every_command_passes_its_script_s_argument_parser(
    services: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    for where, (script, *arguments) in _commands(services):
        if _accepts_arguments(script):
            assert _check_arguments(script, arguments) == 0, where
        else:
            assert arguments == [], f"{where}: {script} takes no arguments"
    capsys.readouterr()


def test_the_argument_check_rejects_an_unknown_subcommand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _check_arguments("herald", ["migrate"]) == 0
    assert "usage: herald migrate" in capsys.readouterr().out
    assert _check_arguments("herald", ["migrat"]) == 2
    assert _check_arguments("herald", ["api-key", "create"]) == 0
    assert not _accepts_arguments("herald-api")


def _clear_herald_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("HERALD_"):
            monkeypatch.delenv(name)


def _assert_read_and_accepted(
    script: str, environment: Mapping[str, str], where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    herald = {name: value for name, value in environment.items() if name.startswith("HERALD_")}
    unknown = set(herald) - env_names_read_by(script)
    assert not unknown, f"{where}: {script} reads no {sorted(unknown)}"
    if script == "herald-probe-stub":
        parse_stub_options([], herald)  # exits on a value it rejects
        return
    with monkeypatch.context() as patch:
        _clear_herald_environment(patch)
        for name, value in herald.items():
            patch.setenv(name, value)
        for cls in settings_classes(console_scripts()[script].package):
            try:
                cls(_env_file=None)
            except ValidationError as error:
                pytest.fail(f"{where}: {cls.__name__} rejects the environment: {error}")


def test_compose_sets_only_variables_its_services_read(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in APP_SERVICES:
        script = service_command(services[name])[0]
        _assert_read_and_accepted(script, service_environment(services[name]), name, monkeypatch)


def _container_environment(container: Container, resources: Resources) -> dict[str, str]:
    """The container's variables as the kubelet sets them: envFrom first, then env."""
    environment: dict[str, str] = {}
    for source in container.spec.get("envFrom", []):
        config = find(resources, "ConfigMap", source["configMapRef"]["name"])
        environment.update(config["data"])
    for variable in container.spec.get("env", []):
        reference = variable.get("valueFrom", {}).get("secretKeyRef")
        if reference:
            secret = find(resources, "Secret", reference["name"])
            environment[variable["name"]] = secret["stringData"][reference["key"]]
        else:
            environment[variable["name"]] = variable["value"]
    return environment


def test_kubernetes_sets_only_variables_its_containers_read(
    manifests: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers: dict[str, set[str]] = {}
    for container in containers(manifests):
        script = container.argv[0]
        direct = {variable["name"] for variable in container.spec.get("env", [])}
        unknown = {n for n in direct if n.startswith("HERALD_")} - env_names_read_by(script)
        assert not unknown, f"{container.name}: {script} reads no {sorted(unknown)}"
        for source in container.spec.get("envFrom", []):
            readers.setdefault(source["configMapRef"]["name"], set()).update(
                env_names_read_by(script)
            )
        environment = _container_environment(container, manifests)
        # A shared ConfigMap may carry a key that only some of its readers use.
        relevant = {k: v for k, v in environment.items() if k in env_names_read_by(script)}
        _assert_read_and_accepted(script, relevant, container.name, monkeypatch)
    for resource in manifests:
        if resource["kind"] == "ConfigMap":
            name = resource["metadata"]["name"]
            unread = set(resource["data"]) - readers.get(name, set())
            assert not unread, f"ConfigMap {name}: no container reads {sorted(unread)}"


def test_the_image_sets_only_variables_some_service_reads() -> None:
    known = set().union(*(env_names_read_by(script) for script in console_scripts()))
    herald = {name for name in final_stage().env() if name.startswith("HERALD_")}
    assert herald, "the image sets the container defaults"
    assert herald <= known


def test_an_unknown_variable_or_bad_value_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AssertionError, match="HERALD_SCHEDULER_METRIC_PORT"):
        _assert_read_and_accepted(
            "herald-scheduler", {"HERALD_SCHEDULER_METRIC_PORT": "9101"}, "typo", monkeypatch
        )
    with pytest.raises(pytest.fail.Exception, match="queue_type"):
        _assert_read_and_accepted(
            "herald-sender", {"HERALD_QUEUE_TYPE": "mirrored"}, "bad value", monkeypatch
        )
    with pytest.raises(SystemExit):
        _assert_read_and_accepted(
            "herald-probe-stub", {"HERALD_STUB_PORT": "eighty"}, "bad value", monkeypatch
        )
