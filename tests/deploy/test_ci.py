"""The CI pipelines: valid for GitLab and GitHub, and set up as the test suite expects."""

import re
from typing import Any

import pytest

from tests.deploy import yaml12
from tests.deploy.project import ROOT
from tests.deploy.schemas import schema_errors

GITLAB = ROOT / ".gitlab-ci.yml"
GITHUB = ROOT / ".github" / "workflows" / "ci.yml"
# The variables tests/conftest.py reads to find PostgreSQL and RabbitMQ.
CONFTEST_VARIABLES = set(
    re.findall(r"\"(HERALD_TEST_\w+)\"", (ROOT / "tests/conftest.py").read_text())
)


@pytest.fixture(scope="module")
def gitlab() -> dict[str, Any]:
    pipeline: dict[str, Any] = yaml12.load(GITLAB.read_text())
    return pipeline


@pytest.fixture(scope="module")
def github() -> dict[str, Any]:
    workflow: dict[str, Any] = yaml12.load(GITHUB.read_text())
    return workflow


def test_the_pipelines_follow_their_published_schemas(
    gitlab: dict[str, Any], github: dict[str, Any]
) -> None:
    assert schema_errors(gitlab, "gitlab-ci") == []
    assert schema_errors(github, "github-workflows") == []


def test_the_schema_check_catches_a_job_named_like_a_keyword(gitlab: dict[str, Any]) -> None:
    broken = {**gitlab, "image": gitlab["build-image"]}  # `image:` is a global keyword
    assert schema_errors(broken, "gitlab-ci") != []


def test_gitlab_lints_tests_with_both_services_then_builds(gitlab: dict[str, Any]) -> None:
    assert gitlab["stages"] == ["lint", "test", "build"]
    assert gitlab["lint"]["script"] == ["make lint"]
    test = gitlab["test"]
    assert test["script"] == ["make test"]
    services = {service["alias"]: service["name"] for service in test["services"]}
    assert services == {"postgres": "postgres:16", "rabbitmq": "rabbitmq:3.13-management"}
    assert set(test["variables"]) == CONFTEST_VARIABLES
    for value in test["variables"].values():
        assert re.search(r"@(postgres|rabbitmq):", value), value
    build = gitlab["build-image"]
    assert build["stage"] == "build"
    assert "--file deploy/Dockerfile" in build["script"][0]


def test_github_lints_tests_with_both_services_then_builds(github: dict[str, Any]) -> None:
    jobs = github["jobs"]
    runs = {name: [step.get("run") for step in job["steps"]] for name, job in jobs.items()}
    assert "make lint" in runs["lint"]
    assert "make test" in runs["test"]
    services = jobs["test"]["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert set(jobs["test"]["env"]) == CONFTEST_VARIABLES
    # Job services publish their ports on the runner, where the tests reach them.
    assert "5432:5432" in services["postgres"]["ports"]
    assert "5672:5672" in services["rabbitmq"]["ports"]
    assert jobs["image"]["needs"] == ["lint", "test"]
    (build,) = (s for s in jobs["image"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["file"] == "deploy/Dockerfile"
