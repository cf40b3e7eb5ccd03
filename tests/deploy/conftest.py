"""Fixtures of the deployment tests: the compose file and the rendered manifests, loaded once."""

from typing import Any

import pytest

from tests.deploy import kustomize
from tests.deploy.compose_file import load_compose


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


@pytest.fixture(scope="session", params=sorted(kustomize.KUSTOMIZATIONS))
def manifests(request: pytest.FixtureRequest) -> tuple[dict[str, Any], ...]:
    """The resources of each kustomization (base, overlays/dev), as kubectl renders them."""
    return kustomize.build(kustomize.KUSTOMIZATIONS[request.param])
