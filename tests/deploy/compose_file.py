"""deploy/compose.yaml as Compose reads it: YAML anchors merged, ``${VAR:-default}`` resolved."""

import re
from collections.abc import Mapping
from typing import Any

from tests.deploy import yaml12
from tests.deploy.project import DEPLOY

COMPOSE_FILE = DEPLOY / "compose.yaml"
APP_SERVICES = ("migrate", "api", "scheduler", "sender", "probe-stub", "reporter")

# ${NAME}, ${NAME:-default}, ${NAME-default}; $$ is a literal dollar.
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
)


class UnsetVariable(KeyError):
    """The file uses a variable without a default that the environment does not set."""


def interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    """Compose's interpolation of every string in ``value``, recursively."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, op, default = match.group("name", "op", "default")
            if op == ":-":
                return environ.get(name) or default
            if op == "-":
                return environ.get(name, default)
            if name not in environ:
                raise UnsetVariable(name)
            return environ[name]

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    return value


def load_compose(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file after interpolation, with an empty environment unless one is given."""
    raw = yaml12.load(COMPOSE_FILE.read_text())
    loaded: dict[str, Any] = interpolate(raw, environ or {})
    return loaded


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a mapping, whichever of the two forms it uses."""
    environment = service.get("environment", {})
    if isinstance(environment, list):
        pairs = (item.partition("=") for item in environment)
        return {name: value for name, _, value in pairs}
    return {name: "" if value is None else str(value) for name, value in environment.items()}


def service_command(service: Mapping[str, Any]) -> list[str]:
    command = service["command"]
    assert isinstance(command, list), "commands are written in exec form, not as a shell string"
    return [str(part) for part in command]
