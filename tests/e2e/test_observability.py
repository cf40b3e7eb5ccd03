"""Issue 4's "done when", on the whole pipeline as separate processes: the JSON logs of
every service tell the story of one mailing, one message and one client, found by their
ids; every /metrics output parses and its message counts equal the ledger's; and no log
line, error body or CLI output shows the probe token or an API key."""

import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.system import BIN, free_port, wait_until_listening
from herald_common.domain import FINAL_STATUSES, MessageStatus
from tests.conftest import fresh_vhost
from tests.e2e import ledger
from tests.e2e.system import PROBE_TOKEN, System, running_system
from tests.e2e.test_dispatch import wait_for

pytestmark = pytest.mark.timeout(240)

Line = dict[str, Any]

HERALD_SERVICES = ("api", "scheduler", "sender-1", "sender-2")
MAILING_CORRELATION = "story-mailing"
TAG = "story"
SERVER_ERRORS = {500, 502, 503}
OK_BODY = '{"code":0,"message":"OK"}'


@dataclass
class Story:
    system: System
    mailing_id: int
    client_id: int  # the client whose life is followed: created while the mailing runs
    message_id: int  # that client's message
    message_ids: list[int]
    metrics: dict[str, str]  # process name -> its /metrics text
    logs: dict[str, list[Line]]  # service name -> its log lines, as read after the story


def read_log(system: System, name: str) -> list[Line]:
    """Every line of a herald service's log; each must be one JSON object naming the service."""
    lines = []
    for number, text in enumerate(system.logs(name).splitlines(), 1):
        line = orjson.loads(text)
        assert isinstance(line, dict), f"{name}:{number} is not a JSON object: {text}"
        assert line.get("service") == name.split("-")[0], f"{name}:{number}: {text}"
        lines.append(line)
    return lines


def read_logs(system: System) -> dict[str, list[Line]]:
    return {name: read_log(system, name) for name in HERALD_SERVICES}


def where(lines: list[Line], **fields: Any) -> list[Line]:
    return [line for line in lines if all(line.get(k) == v for k, v in fields.items())]


def samples(text: str, name: str, **labels: str) -> list[float]:
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def total(texts: list[str], name: str, **labels: str) -> float:
    return sum(value for text in texts for value in samples(text, name, **labels))


def scrape(url: str) -> str:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def ledger_counts(system: System) -> Counter[str]:
    rows = ledger.query(
        system.database_url, "SELECT status, count(*) AS n FROM messages GROUP BY status"
    )
    return Counter({row["status"]: row["n"] for row in rows})


def create_client(system: System, number: int) -> int:
    with system.api as api:
        response = api.post(
            "/clients",
            json={"phone": f"7916000{number:04d}", "tag": TAG, "timezone": "Europe/Moscow"},
            headers={"X-Correlation-ID": f"story-client-{number}"},
        )
    assert response.status_code == 201, response.text
    client_id: int = response.json()["id"]
    return client_id


def deferred_message_ids(system: System) -> set[int]:
    return {
        line["message_id"]
        for name in ("sender-1", "sender-2")
        for line in where(read_log(system, name), event="message.deferred")
    }


def tell_the_story(system: System, scheduler_port: int, sender_ports: list[int]) -> Story:
    # Every first request fails with a 5xx: a retry in-process, then one through a delay
    # queue. The circuit stays closed, so that the story stays short.
    system.configure_stub(error_rate=1.0)
    for number in range(3):
        create_client(system, number)
    now = datetime.now(UTC)
    with system.api as api:
        created = api.post(
            "/mailings",
            json={
                "text": "Spring sale",
                "start_at": (now - timedelta(seconds=5)).isoformat(),
                "end_at": (now + timedelta(minutes=5)).isoformat(),
                "filter": {"tags": [TAG]},
            },
            headers={"X-Correlation-ID": MAILING_CORRELATION},
        )
    assert created.status_code == 201, created.text
    mailing_id: int = created.json()["id"]

    def messages() -> list[dict[str, Any]]:
        return ledger.messages(system.database_url, mailing_id)

    wait_for(lambda: len(messages()) == 3, 30, "the mailing's materialisation")
    # This client joins while the mailing runs: its own event materialises its row.
    client_id = create_client(system, 3)
    wait_for(lambda: len(messages()) == 4, 30, "a message for every client")
    message_ids = [row["id"] for row in messages()]
    [message_id] = [row["id"] for row in messages() if row["client_id"] == client_id]
    wait_for(lambda: set(message_ids) <= deferred_message_ids(system), 60, "every message deferred")
    system.configure_stub(error_rate=0.0)
    wait_for(
        lambda: ledger.statuses(system.database_url, mailing_id) == Counter(sent=4),
        90,
        "every message sent",
    )

    with system.api as api:
        assert api.get(f"/mailings/{mailing_id}/stats").status_code == 200
        changed = api.patch(
            f"/clients/{client_id}",
            json={"tag": "moved"},
            headers={"X-Correlation-ID": "story-client-update"},
        )
        assert changed.status_code == 200, changed.text
        deleted = api.delete(
            f"/clients/{client_id}", headers={"X-Correlation-ID": "story-client-delete"}
        )
        assert deleted.status_code == 204, deleted.text
    wait_for(
        lambda: bool(
            where(
                read_log(system, "scheduler"),
                event="clients.reconciled",
                client_id=client_id,
                event_type="client.deleted",
            )
        ),
        30,
        "the scheduler to reconcile the deleted client",
    )

    scheduler_url = f"http://127.0.0.1:{scheduler_port}/metrics"
    counts = ledger_counts(system)
    wait_for(
        lambda: all(
            samples(scrape(scheduler_url), "herald_messages", status=status.value)
            == [float(counts.get(status.value, 0))]
            for status in MessageStatus
        ),
        20,
        "the ledger gauge to catch up with the ledger",
    )
    metrics = {
        "api": scrape(f"http://127.0.0.1:{system.api_port}/metrics"),
        "scheduler": scrape(scheduler_url),
        **{
            f"sender-{index}": scrape(f"http://127.0.0.1:{port}/metrics")
            for index, port in enumerate(sender_ports, 1)
        },
    }
    return Story(
        system=system,
        mailing_id=mailing_id,
        client_id=client_id,
        message_id=message_id,
        message_ids=message_ids,
        metrics=metrics,
        logs=read_logs(system),
    )


@pytest.fixture(scope="module")
def story(
    database_server_url: str, amqp_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Story]:
    scheduler_port = free_port()
    sender_ports = [free_port(), free_port()]
    with ExitStack() as stack:
        amqp_url = stack.enter_context(
            fresh_vhost(amqp_server_url, f"herald-e2e-{uuid.uuid4().hex[:8]}")
        )
        system = stack.enter_context(
            running_system(
                database_server_url=database_server_url,
                amqp_url=amqp_url,
                log_dir=tmp_path_factory.mktemp("observability"),
                senders=0,
                env={
                    "HERALD_SCHEDULER_METRICS_PORT": str(scheduler_port),
                    "HERALD_SENDER_INPROCESS_ATTEMPTS": "2",
                    "HERALD_SENDER_BREAKER_WINDOW": "1000",
                    "HERALD_SENDER_BREAKER_FAILURE_RATE": "1.0",
                },
            )
        )
        for index, port in enumerate(sender_ports, 1):
            sender = system.service(
                f"sender-{index}",
                [str(BIN / "herald-sender")],
                {"HERALD_SENDER_METRICS_PORT": str(port)},
            )
            assert sender.process is not None
            wait_until_listening(port, sender.process)
        try:
            yield tell_the_story(system, scheduler_port, sender_ports)
        except BaseException:
            for name in system.services:
                print(f"\n===== {name} log (tail) =====\n{system.logs(name)[-3000:]}")
            raise


def every_line(story: Story) -> list[Line]:
    return [line for lines in story.logs.values() for line in lines]


def test_every_line_of_every_service_is_json_and_names_the_service(story: Story) -> None:
    for name in HERALD_SERVICES:
        assert story.logs[name], f"{name} logged nothing"
        assert all(line["service"] == name.split("-")[0] for line in story.logs[name])
        assert all({"event", "level", "timestamp"} <= line.keys() for line in story.logs[name])


def test_the_mailing_story(story: Story) -> None:
    """By mailing id: the API calls on it, materialisation, every send and its answer."""
    found = where(every_line(story), mailing_id=story.mailing_id)
    api = where(found, service="api")
    scheduler = where(found, service="scheduler")
    sender = where(found, service="sender")

    assert where(api, event="mailing.created")
    accesses = [
        (line["method"], line["route"], line["status"]) for line in where(api, event="http.request")
    ]
    assert ("POST", "/api/v1/mailings", 201) in accesses
    assert ("GET", "/api/v1/mailings/{mailing_id}/stats", 200) in accesses

    materialised = where(scheduler, event="mailing.materialised")
    # The fourth client joined later: the client story has its row.
    assert sum(line["inserted"] for line in materialised) == 3
    assert where(scheduler, event="mailing.reconciled")
    queued = where(scheduler, event="messages.queued")
    assert sorted(i for line in queued for i in line["message_ids"]) == sorted(story.message_ids)

    attempts = where(sender, event="message.attempt")
    answered = {(line["message_id"], line["status"]) for line in attempts}
    for message_id in story.message_ids:
        assert (message_id, 200) in answered, message_id
        assert any((message_id, status) in answered for status in SERVER_ERRORS), message_id
    assert len(attempts) == len(story.system.stub_received())


def test_the_correlation_id_travels_from_the_request_to_every_send(story: Story) -> None:
    found = where(every_line(story), mailing_id=story.mailing_id)
    downstream = [line for line in found if line["service"] in ("scheduler", "sender")]

    assert downstream
    assert {line.get("correlation_id") for line in downstream} == {MAILING_CORRELATION}
    [created] = where(found, event="mailing.created")
    assert created["correlation_id"] == MAILING_CORRELATION


def test_the_message_story(story: Story) -> None:
    """By message id: each attempt with status, body, latency, error class and next retry."""
    found = where(every_line(story), message_id=story.message_id)
    attempts = sorted(where(found, event="message.attempt"), key=lambda line: line["timestamp"])

    assert [line["attempt"] for line in attempts] == list(range(1, len(attempts) + 1))
    *failures, success = attempts
    assert len(failures) >= 2
    for failure in failures:
        assert failure["status"] in SERVER_ERRORS
        assert failure["error_class"] == "server_error"
        assert '"message"' in failure["body"]
        assert failure["latency_ms"] >= 0
        assert failure["client_id"] == story.client_id
    assert success["status"] == 200
    assert success["error_class"] is None
    assert success["body"] == OK_BODY
    assert success["latency_ms"] >= 0

    [retry, *_] = where(found, event="message.retry_scheduled")
    assert retry["retry_in_ms"] > 0
    assert datetime.fromisoformat(retry["next_attempt_at"]) > datetime.fromisoformat(
        retry["timestamp"]
    )
    deferrals = where(found, event="message.deferred")
    assert deferrals
    for deferral in deferrals:
        assert deferral["error_class"] == "server_error"
        assert deferral["tier"] in ("5s", "30s")
        assert datetime.fromisoformat(deferral["next_attempt_at"]) > datetime.fromisoformat(
            deferral["timestamp"]
        )
    queued = where(every_line(story), event="messages.queued")
    assert any(story.message_id in line["message_ids"] for line in queued)


def test_the_client_story(story: Story) -> None:
    """By client id: creation, materialisation, update, deletion and every send to it."""
    found = where(every_line(story), client_id=story.client_id)
    api = where(found, service="api")
    scheduler = where(found, service="scheduler")

    for event in ("client.created", "client.updated", "client.deleted"):
        assert len(where(api, event=event)) == 1, event
    accesses = [(line["method"], line["status"]) for line in where(api, event="http.request")]
    assert accesses == [("POST", 201), ("PATCH", 200), ("DELETE", 204)]

    reconciled = where(scheduler, event="clients.reconciled")
    assert {line["event_type"] for line in reconciled} == {
        "client.created",
        "client.updated",
        "client.deleted",
    }
    [joined] = where(reconciled, event_type="client.created")
    assert joined["inserted"] == 1

    sends = where(found, event="message.attempt")
    every_send = where(every_line(story), event="message.attempt", message_id=story.message_id)
    assert len(sends) == len(every_send) >= 3


def test_every_metrics_output_parses_and_the_message_counts_equal_the_ledger(
    story: Story,
) -> None:
    for name, text in story.metrics.items():
        assert list(text_string_to_metric_families(text)), name
    counts = ledger_counts(story.system)
    assert counts == Counter(sent=4)
    scheduler = story.metrics["scheduler"]
    senders = [story.metrics["sender-1"], story.metrics["sender-2"]]

    for status in FINAL_STATUSES:
        finals = total([scheduler], "herald_messages_final_total", status=status.value)
        assert finals == counts.get(status.value, 0), status
    for status in MessageStatus:
        gauge = samples(scheduler, "herald_messages", status=status.value)
        assert gauge == [counts.get(status.value, 0)], status
    assert samples(scheduler, "herald_due_unqueued_messages") == [0]
    assert total([scheduler], "herald_ledger_batch_size_count") > 0

    requests = len(story.system.stub_received())
    attempt_lines = [line for line in every_line(story) if line["event"] == "message.attempt"]
    assert total(senders, "herald_send_attempts_total") == requests == len(attempt_lines)
    assert total(senders, "herald_send_attempts_total", outcome="sent") == counts["sent"]
    assert total(senders, "herald_send_attempts_total", outcome="server_error") == sum(
        1 for line in attempt_lines if line["status"] in SERVER_ERRORS
    )
    assert total(senders, "herald_probe_request_duration_seconds_count") == requests
    deferrals = [line for line in every_line(story) if line["event"] == "message.deferred"]
    assert total(senders, "herald_retries_scheduled_total") == len(deferrals)
    for text in senders:
        assert samples(text, "herald_sender_commands_inflight") == [0]
        assert samples(text, "herald_sender_inflight_requests") == [0]
        assert samples(text, "herald_circuit_state") == [0]

    api = story.metrics["api"]
    assert samples(api, "herald_outbox_backlog") == [0]
    served = [
        line
        for line in story.logs["api"]
        if line["event"] == "http.request" and line["route"] != "/metrics"
    ]
    counted = sum(
        sample.value
        for family in text_string_to_metric_families(api)
        for sample in family.samples
        if sample.name == "herald_http_requests_total" and sample.labels["route"] != "/metrics"
    )
    assert counted == len(served)


def test_no_log_line_error_body_or_cli_output_shows_a_secret(story: Story) -> None:
    system = story.system
    env = system.env
    herald = str(BIN / "herald")
    created = subprocess.run(
        [herald, "api-key", "create", "--name", "revoked-one"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    second_key = created.stdout.strip()
    assert second_key.startswith("hk_")
    listing = subprocess.run(
        [herald, "api-key", "list"], env=env, check=True, capture_output=True, text=True
    )
    key_id = next(line.split()[0] for line in listing.stdout.splitlines() if "revoked-one" in line)
    revoked = subprocess.run(
        [herald, "api-key", "revoke", key_id], env=env, check=True, capture_output=True, text=True
    )
    wrong_secret = system.api_key[:-6] + ("A" if system.api_key[-6] != "A" else "B") * 6
    secrets = [PROBE_TOKEN, system.api_key, second_key, wrong_secret]

    base = f"http://127.0.0.1:{system.api_port}/api/v1"
    answers = []
    for key in (wrong_secret, second_key, PROBE_TOKEN, f"not-a-key-{PROBE_TOKEN}", None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = httpx.get(f"{base}/clients", headers=headers)
        assert response.status_code == 401, response.text
        answers.append(response)
    authorised = {"Authorization": f"Bearer {system.api_key}"}
    answers.append(httpx.get(f"{base}/clients/999999", headers=authorised))
    answers.append(
        httpx.post(
            f"{base}/clients",
            headers=authorised,
            json={"phone": system.api_key, "timezone": PROBE_TOKEN},
        )
    )
    answers.append(httpx.get(f"{base}/clients?cursor={system.api_key}", headers=authorised))
    assert [r.status_code for r in answers[5:]] == [404, 422, 422]

    texts = {
        "cli create stderr": created.stderr,
        "cli list": listing.stdout + listing.stderr,
        "cli revoke": revoked.stdout + revoked.stderr,
        **{f"answer {r.request.method} {r.request.url}": r.text for r in answers},
        **{f"{name} /metrics": text for name, text in story.metrics.items()},
        **{path.name: path.read_text() for path in system.log_dir.glob("*.log")},
    }
    assert set(HERALD_SERVICES) <= {Path(name).stem for name in texts}
    for source, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret shows in {source}"
    # The 401s were logged, naming no key.
    rejected = [
        line
        for line in read_log(system, "api")
        if line["event"] == "http.request" and line["status"] == 401
    ]
    assert len(rejected) >= 5
    assert all(line["api_key_name"] is None for line in rejected)
