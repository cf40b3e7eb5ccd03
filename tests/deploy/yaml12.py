"""YAML as Compose, Kubernetes and the CI services read it (1.2: only true/false are booleans).

PyYAML follows YAML 1.1, where a GitHub workflow's ``on:`` key would become ``True``.
"""

import re
from typing import Any

import yaml

_BOOL = "tag:yaml.org,2002:bool"


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's: yes/no/on/off stay strings."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load(text: str) -> Any:
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def load_all(text: str) -> list[Any]:
    return [document for document in yaml.load_all(text, Loader=Yaml12Loader) if document]
