"""deploy/compose.yaml: valid Compose, and wired the way herald needs to start and run."""

import copy
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy import yaml12
from tests.deploy.compose_file import (
    APP_SERVICES,
    COMPOSE_FILE,
    UnsetVariable,
    interpolate,
    load_compose,
    service_environment,
)
from tests.deploy.project import DEPLOY, ROOT
from tests.deploy.schemas import schema_errors

WORKERS = ("api", "scheduler", "sender")


def test_the_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert schema_errors(compose, "compose-spec") == []


def test_the_specification_check_catches_a_broken_dependency(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["api"]["helthcheck"] = broken["services"]["api"].pop("healthcheck")

    errors = schema_errors(broken, "compose-spec")

    assert any("service_finished" in error for error in errors), errors
    assert any("helthcheck" in error for error in errors), errors


def test_every_variable_without_a_default_is_reported() -> None:
    assert interpolate("${A:-x}/${B-y}/$${C}", {"B": ""}) == "x//${C}"
    with pytest.raises(UnsetVariable):
        interpolate("${NOT_SET}", {})
    load_compose({})  # the file itself uses none: `docker compose up` works as it is


def test_the_stack_has_every_part(services: dict[str, Any]) -> None:
    assert set(services) == {*APP_SERVICES, "postgres", "rabbitmq", "prometheus", "mailpit"}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert "127.0.0.1:15672:15672" in services["rabbitmq"]["ports"]
    assert "127.0.0.1:8000:8000" in services["api"]["ports"]
    assert services["mailpit"]["image"].startswith("axllent/mailpit:v")
    assert "127.0.0.1:8025:8025" in services["mailpit"]["ports"]  # its web inbox


def test_herald_services_build_the_repository_image(services: dict[str, Any]) -> None:
    images = set()
    for name in APP_SERVICES:
        build = services[name]["build"]
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).is_file(), name
        images.add(services[name]["image"])
    assert len(images) == 1, "every herald service runs the same image"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name == "migrate":
            assert service["restart"] == "no"
            assert "healthcheck" not in service
        else:
            assert service["healthcheck"]["test"][0] == "CMD", name
            assert service.get("restart", "no") == "unless-stopped", name


def test_services_wait_for_healthy_dependencies_and_the_migration(
    services: dict[str, Any],
) -> None:
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in WORKERS:
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends_on["rabbitmq"] == {"condition": "service_healthy"}, name
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}"


def test_senders_are_three_interchangeable_replicas(services: dict[str, Any]) -> None:
    sender = services["sender"]
    assert sender["deploy"]["replicas"] == 3
    # A fixed container name or host port would clash between replicas.
    assert "container_name" not in sender
    assert "ports" not in sender


def test_state_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    expected = {
        "postgres": "/var/lib/postgresql/data",
        "rabbitmq": "/var/lib/rabbitmq",
        "prometheus": "/prometheus",
    }
    for name, target in expected.items():
        mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"][name]["volumes"]}
        assert mounts[target] in named, name
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in named or (COMPOSE_FILE.parent / source).exists(), (name, volume)


def test_the_probe_url_defaults_to_the_stub_and_follows_the_environment(
    services: dict[str, Any],
) -> None:
    sender = service_environment(services["sender"])
    stub = service_environment(services["probe-stub"])
    stub_url = urlsplit(sender["HERALD_PROBE_URL"])
    assert (stub_url.hostname, stub_url.port) == ("probe-stub", int(stub["HERALD_STUB_PORT"]))
    assert sender["HERALD_PROBE_TOKEN"] == stub["HERALD_STUB_TOKEN"]

    real = load_compose({"HERALD_PROBE_URL": "https://probe.example/v1", "HERALD_PROBE_TOKEN": "t"})
    assert service_environment(real["services"]["sender"])["HERALD_PROBE_URL"] == (
        "https://probe.example/v1"
    )
    assert real["services"]["sender"]["depends_on"]["probe-stub"]["required"] is False


def test_containers_listen_beyond_loopback(services: dict[str, Any]) -> None:
    assert service_environment(services["api"])["HERALD_API_HOST"] == "0.0.0.0"  # noqa: S104
    assert service_environment(services["probe-stub"])["HERALD_STUB_HOST"] == "0.0.0.0"  # noqa: S104
    for name in ("scheduler", "sender", "reporter"):
        assert service_environment(services[name])["HERALD_METRICS_HOST"] == "0.0.0.0", name  # noqa: S104


def test_herald_services_share_the_database_and_broker(services: dict[str, Any]) -> None:
    for name in ("migrate", *WORKERS):
        environment = service_environment(services[name])
        database = urlsplit(environment["HERALD_DATABASE_URL"])
        broker = urlsplit(environment["HERALD_AMQP_URL"])
        assert (database.scheme, database.hostname, database.path) == (
            "postgresql+psycopg",
            "postgres",
            "/herald",
        )
        assert (broker.scheme, broker.hostname) == ("amqp", "rabbitmq")
        assert environment["HERALD_QUEUE_TYPE"] == "classic", "one RabbitMQ node"
        assert database.username == services["postgres"]["environment"]["POSTGRES_USER"]
        assert database.password == services["postgres"]["environment"]["POSTGRES_PASSWORD"]
        assert broker.username == services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_USER"]
        assert broker.password == services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"]


def test_prometheus_scrapes_the_api_the_scheduler_and_every_sender(
    services: dict[str, Any],
) -> None:
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    config_file = COMPOSE_FILE.parent / mounted["/etc/prometheus/prometheus.yml"]
    assert config_file == DEPLOY / "prometheus.yml"
    jobs = {job["job_name"]: job for job in yaml12.load(config_file.read_text())["scrape_configs"]}
    ports = {
        "api": service_environment(services["api"])["HERALD_API_PORT"],
        "scheduler": service_environment(services["scheduler"])["HERALD_SCHEDULER_METRICS_PORT"],
    }
    for name, port in ports.items():
        job = jobs[f"herald-{name}"]
        assert job["metrics_path"] == "/metrics"
        assert job["static_configs"] == [{"targets": [f"{name}:{port}"]}]
    # Replicas share one DNS name; DNS discovery makes each of them a target.
    for name in ("sender", "reporter"):
        port = next(
            value
            for key, value in service_environment(services[name]).items()
            if key.endswith("_METRICS_PORT")
        )
        assert jobs[f"herald-{name}"]["dns_sd_configs"] == [
            {"names": [name], "type": "A", "port": int(port), "refresh_interval": "15s"}
        ]


def test_the_reporter_mails_the_catcher_unless_the_environment_names_a_server(
    services: dict[str, Any],
) -> None:
    reporter = service_environment(services["reporter"])
    assert (reporter["HERALD_SMTP_HOST"], reporter["HERALD_SMTP_PORT"]) == ("mailpit", "1025")
    assert reporter["HERALD_SMTP_TLS"] == "none"
    assert reporter["HERALD_REPORT_RECIPIENTS"]
    assert services["reporter"]["deploy"]["replicas"] == 2, "replicas share the daily claim"
    assert "ports" not in services["reporter"]
    assert services["reporter"]["depends_on"]["mailpit"]["required"] is False

    real = load_compose(
        {
            "HERALD_SMTP_HOST": "smtp.example.com",
            "HERALD_SMTP_PORT": "587",
            "HERALD_SMTP_TLS": "starttls",
            "HERALD_SMTP_USERNAME": "herald",
            "HERALD_SMTP_PASSWORD": "secret",
        }
    )
    environment = service_environment(real["services"]["reporter"])
    assert (environment["HERALD_SMTP_HOST"], environment["HERALD_SMTP_TLS"]) == (
        "smtp.example.com",
        "starttls",
    )
    assert environment["HERALD_SMTP_PASSWORD"] == "secret"
