"""What ``herald run`` says about RabbitMQ's management UI, and when it turns it on itself
(never without HERALD_RUN_ENABLE_RABBITMQ_UI). Nothing here starts ``herald run``."""

import shutil

import pytest

from herald_api import run
from herald_api.run import RunSettings, rabbitmq_ui_line

LOCAL = "amqp://guest:guest@127.0.0.1:5672/"


def test_a_local_ui_that_answers_is_printed_with_the_default_login() -> None:
    line = rabbitmq_ui_line(LOCAL, answering=True)

    assert line == "RabbitMQ: http://127.0.0.1:15672 (guest/guest)"
    # No credentials in the URL: the client's defaults, guest/guest.
    assert rabbitmq_ui_line("amqp://localhost/", answering=True) == (
        "RabbitMQ: http://127.0.0.1:15672 (guest/guest)"
    )


def test_any_other_password_is_never_printed() -> None:
    line = rabbitmq_ui_line("amqp://herald:s%40cret@127.0.0.1:5672/herald", answering=True)

    assert line == "RabbitMQ: http://127.0.0.1:15672 (user herald, vhost herald)"
    assert "cret" not in line
    changed = rabbitmq_ui_line("amqp://guest:other@localhost/", answering=True)
    assert changed == "RabbitMQ: http://127.0.0.1:15672 (user guest)"


def test_a_ui_that_is_off_says_how_to_turn_it_on() -> None:
    line = rabbitmq_ui_line(LOCAL, answering=False)

    assert line.startswith("RabbitMQ: its management UI is off\n")
    assert "`rabbitmq-plugins enable rabbitmq_management`" in line
    assert "HERALD_RUN_ENABLE_RABBITMQ_UI=true" in line


def test_a_failed_attempt_says_why() -> None:
    line = rabbitmq_ui_line(LOCAL, answering=False, enable_failed="permission denied")

    assert "could not be turned on: permission denied" in line
    assert "`rabbitmq-plugins enable rabbitmq_management`" in line


def test_a_remote_broker_is_named_but_its_ui_not_guessed() -> None:
    line = rabbitmq_ui_line("amqp://herald:pw@rabbit.internal/", answering=False)

    assert line == (
        "RabbitMQ: rabbit.internal:5672 (not local: its management UI was not looked for)"
    )


@pytest.mark.parametrize(
    ("opted_in", "enabled"), [(False, False), (True, True)], ids=["default", "opted in"]
)
def test_herald_run_turns_the_ui_on_only_when_told_to(
    monkeypatch: pytest.MonkeyPatch, opted_in: bool, enabled: bool
) -> None:
    calls: list[str] = []

    def enable() -> None:
        calls.append("enable")

    monkeypatch.setattr(run, "rabbitmq_ui_answers", lambda: False)
    monkeypatch.setattr(run, "enable_rabbitmq_ui", enable)
    settings = RunSettings(amqp_url=LOCAL, run_enable_rabbitmq_ui=opted_in)

    line = run.rabbitmq_ui(settings)

    assert calls == (["enable"] if enabled else [])
    assert line.startswith("RabbitMQ: http://127.0.0.1:15672" if enabled else "RabbitMQ: its")


def test_a_remote_broker_is_never_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise AssertionError("must not be called for a remote broker")

    monkeypatch.setattr(run, "rabbitmq_ui_answers", fail)
    monkeypatch.setattr(run, "enable_rabbitmq_ui", fail)
    settings = RunSettings(amqp_url="amqp://h:p@rabbit.internal/", run_enable_rabbitmq_ui=True)

    assert run.rabbitmq_ui(settings).startswith("RabbitMQ: rabbit.internal:5672")


def test_without_rabbitmq_plugins_there_is_nothing_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)

    assert run.enable_rabbitmq_ui() == "rabbitmq-plugins is not on this machine"
