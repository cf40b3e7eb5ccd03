"""Reading a dead letter's headers and body, whatever they hold, and the CLI's one-line
broker errors (which never show a password)."""

from datetime import UTC, datetime

import aio_pika

from herald_api.dead_letters import unreachable_message
from herald_common.broker.dead_letters import Death, excerpt, last_death


def test_the_latest_death_is_the_first_entry() -> None:
    died = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    headers = {
        "x-death": [
            {
                "count": 2,
                "reason": "rejected",
                "queue": "herald.send.commands",
                "time": died,
                "exchange": "herald.send",
                "routing-keys": ["send"],
            },
            {"count": 1, "reason": "expired", "queue": "herald.retry.5s", "exchange": "x"},
        ]
    }

    assert last_death(headers) == Death(
        queue="herald.send.commands",
        exchange="herald.send",
        routing_keys=("send",),
        reason="rejected",
        count=2,
        time=died,
    )


def test_headers_without_a_death_have_none() -> None:
    assert last_death({}) is None
    assert last_death({"x-death": []}) is None
    assert last_death({"x-death": "garbage"}) is None
    assert last_death({"x-death": [{"queue": b"q"}]}) == Death("q", "", (), "", 1, None)


def test_an_envelope_shows_its_payload() -> None:
    body = (
        b'{"id":"5c1","occurred_at":"2026-12-03T10:00:00Z","correlation_id":"r",'
        b'"schema_version":1,"type":"send_messages","mailing_id":7,"messages":[{"id":1}]}'
    )

    assert excerpt(body) == '{"mailing_id":7,"messages":[{"id":1}]}'


def test_anything_else_shows_its_start_on_one_line() -> None:
    assert excerpt(b"not\n  json\xff") == "not json\ufffd"
    long = excerpt(b"x" * 500, limit=20)
    assert long == "x" * 19 + "…"


def test_broker_errors_never_show_the_password() -> None:
    url = "amqp://herald:s3cret@rabbit.internal:5671/prod"
    refused = unreachable_message(url, ConnectionRefusedError(111, "refused"))
    login = unreachable_message(url, aio_pika.exceptions.ProbableAuthenticationError("x"))

    assert refused == (
        "cannot reach RabbitMQ at rabbit.internal:5671 (Connection refused); start it with"
        " `rabbitmq-server -detached`, or set HERALD_AMQP_URL"
    )
    assert "user herald's login" in login
    assert "s3cret" not in refused + login
