"""deploy/k8s: kustomize renders it, every manifest is valid Kubernetes, and it is wired right."""

import copy
import re
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]  # ships schemas, no type hints
import pytest

from tests.deploy import kustomize
from tests.deploy.kustomize import Container, containers, find, pod_template
from tests.deploy.project import DEPLOY

# The oldest Kubernetes we support and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())
DOCKERFILE_USER = re.search(r"^USER (\d+):(\d+)$", (DEPLOY / "Dockerfile").read_text(), re.M)
WORKER_METRICS = {"herald-scheduler": 9101, "herald-sender": 9102, "herald-reporter": 9120}
SECRET_KEYS = {
    "HERALD_DATABASE_URL",
    "HERALD_AMQP_URL",
    "HERALD_PROBE_TOKEN",
    "HERALD_SMTP_HOST",
    "HERALD_SMTP_USERNAME",
    "HERALD_SMTP_PASSWORD",
    "HERALD_SMTP_FROM",
    "HERALD_REPORT_RECIPIENTS",
}

Resources = tuple[dict[str, Any], ...]


def _port_env(container: Container) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.spec.get("env", [])}


def _selects(selector: dict[str, str], workload: dict[str, Any]) -> bool:
    labels: dict[str, str] = pod_template(workload)["metadata"]["labels"]
    return selector.items() <= labels.items()


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_kubernetes(manifests: Resources, version: str) -> None:
    for resource in manifests:
        # strict: an unknown (misspelt) field is an error, not silently dropped
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validation_catches_a_misspelt_field(manifests: Resources) -> None:
    deployment = copy.deepcopy(find(manifests, "Deployment", "herald-api"))
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_base_is_namespace_agnostic_and_dev_sets_one() -> None:
    base = kustomize.build(kustomize.BASE)
    assert all("namespace" not in resource["metadata"] for resource in base)
    dev = kustomize.build(kustomize.DEV)
    assert find(dev, "Namespace", "herald-dev")
    for resource in dev:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "herald-dev", resource["metadata"]["name"]


def test_the_stack_has_every_part(manifests: Resources) -> None:
    kinds = {(resource["kind"], resource["metadata"]["name"]) for resource in manifests}
    assert {
        ("Deployment", "herald-api"),
        ("Deployment", "herald-scheduler"),
        ("Deployment", "herald-sender"),
        ("Deployment", "herald-reporter"),
        ("Service", "herald-api"),
        ("Ingress", "herald-api"),
        ("ConfigMap", "herald-config"),
        ("Secret", "herald-secrets"),
        ("Job", "herald-migrate"),
        ("HorizontalPodAutoscaler", "herald-sender"),
        ("PodDisruptionBudget", "herald-sender"),
    } <= kinds


def test_pods_run_unprivileged_with_resource_bounds(manifests: Resources) -> None:
    assert DOCKERFILE_USER, "the Dockerfile runs as a numeric USER uid:gid"
    uid, gid = int(DOCKERFILE_USER[1]), int(DOCKERFILE_USER[2])
    for container in containers(manifests):
        pod = container.pod["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, container.name
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
            uid,
            gid,
        ), container.name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False, container.name
        security = container.spec["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, container.name
        assert security["readOnlyRootFilesystem"] is True, container.name
        assert security["capabilities"]["drop"] == ["ALL"], container.name
        resources = container.spec["resources"]
        for bound in ("requests", "limits"):
            assert set(resources[bound]) == {"cpu", "memory"}, (container.name, bound)


def test_every_herald_container_runs_the_same_image(manifests: Resources) -> None:
    images = {container.spec["image"] for container in containers(manifests)}
    assert len(images) == 1
    assert images.pop().split(":")[0].rsplit("/", 1)[-1] == "herald"
    assert {c.spec["image"] for c in containers(kustomize.build(kustomize.DEV))} == {"herald:dev"}


def test_the_api_is_live_on_healthz_and_ready_on_readyz(manifests: Resources) -> None:
    (api,) = (c for c in containers(manifests) if c.workload["metadata"]["name"] == "herald-api")
    (port,) = api.spec["ports"]
    assert (port["name"], str(port["containerPort"])) == ("http", _port_env(api)["HERALD_API_PORT"])
    assert _port_env(api)["HERALD_API_HOST"] == "0.0.0.0"  # noqa: S104
    assert api.spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api.spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api.spec["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_workers_are_probed_on_the_metrics_port_they_serve(manifests: Resources) -> None:
    for container in containers(manifests):
        name = container.workload["metadata"]["name"]
        if name not in WORKER_METRICS:
            continue
        env = _port_env(container)
        (port,) = container.spec["ports"]
        assert port == {"name": "metrics", "containerPort": WORKER_METRICS[name]}
        (port_variable,) = (k for k in env if k.endswith("_METRICS_PORT"))
        assert env[port_variable] == str(WORKER_METRICS[name])
        assert env["HERALD_METRICS_HOST"] == "0.0.0.0", name  # noqa: S104
        for probe in ("livenessProbe", "readinessProbe"):
            assert container.spec[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_every_long_running_container_has_both_probes(manifests: Resources) -> None:
    for container in containers(manifests):
        if container.workload["kind"] == "Deployment":
            assert "livenessProbe" in container.spec, container.name
            assert "readinessProbe" in container.spec, container.name


def test_prometheus_finds_every_metrics_endpoint(manifests: Resources) -> None:
    scraped = {}
    for container in containers(manifests):
        annotations = container.pod["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            ports = {port["containerPort"] for port in container.spec["ports"]}
            assert int(annotations["prometheus.io/port"]) in ports, container.name
            assert annotations["prometheus.io/path"] == "/metrics"
            scraped[container.workload["metadata"]["name"]] = annotations["prometheus.io/port"]
    assert scraped == {
        "herald-api": "8000",
        "herald-scheduler": "9101",
        "herald-sender": "9102",
        "herald-reporter": "9120",
    }


def test_selectors_and_references_find_their_targets(manifests: Resources) -> None:
    workloads = [r for r in manifests if r["kind"] in kustomize.WORKLOAD_KINDS]
    for resource in manifests:
        kind, name = resource["kind"], resource["metadata"]["name"]
        if kind == "Service":
            selected = [w for w in workloads if _selects(resource["spec"]["selector"], w)]
            assert len(selected) == 1, name
            port_names = {
                p["name"]
                for c in pod_template(selected[0])["spec"]["containers"]
                for p in c["ports"]
            }
            for port in resource["spec"]["ports"]:
                assert port["targetPort"] in port_names, name
        if kind == "PodDisruptionBudget":
            selector = resource["spec"]["selector"]["matchLabels"]
            assert [w["metadata"]["name"] for w in workloads if _selects(selector, w)] == [name]
        if kind == "Ingress":
            for rule in resource["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    service = find(manifests, "Service", backend["name"])
                    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    for workload in workloads:
        assert find(
            manifests, "ServiceAccount", pod_template(workload)["spec"]["serviceAccountName"]
        )


def test_config_and_secret_references_resolve(manifests: Resources) -> None:
    for container in containers(manifests):
        for source in container.spec.get("envFrom", []):
            if "configMapRef" in source:
                find(manifests, "ConfigMap", source["configMapRef"]["name"])
            if "secretRef" in source:
                find(manifests, "Secret", source["secretRef"]["name"])
        for variable in container.spec.get("env", []):
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                secret = find(manifests, "Secret", reference["name"])
                assert reference["key"] in secret["stringData"], (container.name, reference)


def test_the_base_secret_is_a_template_of_placeholders() -> None:
    secret = find(kustomize.build(kustomize.BASE), "Secret", "herald-secrets")
    assert "data" not in secret
    assert set(secret["stringData"]) == SECRET_KEYS
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())


def test_only_senders_see_the_probe_token(manifests: Resources) -> None:
    for container in containers(manifests):
        names = {variable["name"] for variable in container.spec.get("env", [])}
        sees_token = "HERALD_PROBE_TOKEN" in names or "HERALD_STUB_TOKEN" in names
        assert sees_token == (
            container.spec["command"][0] in ("herald-sender", "herald-probe-stub")
        )
        assert all("secretRef" not in source for source in container.spec.get("envFrom", []))


def test_only_the_reporter_sees_the_smtp_credentials() -> None:
    for container in containers(kustomize.build(kustomize.BASE)):
        names = {variable["name"] for variable in container.spec.get("env", [])}
        sees = {"HERALD_SMTP_USERNAME", "HERALD_SMTP_PASSWORD"} & names
        assert bool(sees) == (container.argv[0] == "herald-reporter"), container.name


def test_the_reporter_runs_two_replicas_that_share_the_claims() -> None:
    base = find(kustomize.build(kustomize.BASE), "Deployment", "herald-reporter")
    assert base["spec"]["replicas"] == 2
    (reporter,) = pod_template(base)["spec"]["containers"]
    assert reporter["command"] == ["herald-reporter", "run"]
    dev = kustomize.build(kustomize.DEV)
    config = find(dev, "ConfigMap", "herald-config")["data"]
    secret = find(dev, "Secret", "herald-secrets")["stringData"]
    # The dev cluster mails a catcher in the namespace, in plain text and without auth.
    assert (secret["HERALD_SMTP_HOST"], config["HERALD_SMTP_TLS"]) == ("mailpit", "none")
    assert secret["HERALD_SMTP_PASSWORD"] == ""


def test_senders_scale_on_cpu_and_are_evicted_one_at_a_time(manifests: Resources) -> None:
    autoscaler = find(manifests, "HorizontalPodAutoscaler", "herald-sender")["spec"]
    assert autoscaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "herald-sender",
    }
    assert 1 <= autoscaler["minReplicas"] < autoscaler["maxReplicas"]
    (metric,) = autoscaler["metrics"]
    assert metric["type"] == "Resource"
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    budget = find(manifests, "PodDisruptionBudget", "herald-sender")["spec"]
    assert budget["maxUnavailable"] == 1
    sender = pod_template(find(manifests, "Deployment", "herald-sender"))["spec"]["containers"][0]
    assert "cpu" in sender["resources"]["requests"], "CPU utilisation is relative to the request"


def test_migrations_run_once_as_a_job(manifests: Resources) -> None:
    job = find(manifests, "Job", "herald-migrate")
    pod = pod_template(job)["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["command"] == ["herald", "migrate"]
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["ttlSecondsAfterFinished"] > 0


def test_dev_senders_call_the_stub_with_the_token_it_expects() -> None:
    dev = kustomize.build(kustomize.DEV)
    probe_url = urlsplit(find(dev, "ConfigMap", "herald-config")["data"]["HERALD_PROBE_URL"])
    stub_service = find(dev, "Service", str(probe_url.hostname))
    assert probe_url.port in {port["port"] for port in stub_service["spec"]["ports"]}
    tokens = {}
    for container in containers(dev):
        for variable in container.spec.get("env", []):
            if variable["name"] in ("HERALD_PROBE_TOKEN", "HERALD_STUB_TOKEN"):
                tokens[container.argv[0]] = variable["valueFrom"]["secretKeyRef"]
    assert tokens["herald-sender"] == tokens["herald-probe-stub"]
