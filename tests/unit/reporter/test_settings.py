"""The reporter's settings: defaults for a developer machine, checks that catch a bad deploy."""

from datetime import time

import pytest
from pydantic import ValidationError

from herald_reporter.settings import ReporterSettings, SmtpTls


def test_defaults_mail_the_local_sink_at_eight_utc() -> None:
    settings = ReporterSettings(_env_file=None)
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_tls) == (
        "127.0.0.1",
        8025,
        SmtpTls.none,
    )
    assert settings.report_time == time(8, 0)
    assert settings.zone.key == "UTC"
    assert settings.report_recipients == []
    assert settings.reporter_metrics_port == 9120


def test_the_environment_sets_recipients_as_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HERALD_REPORT_RECIPIENTS", " ops@example.com, lead@example.com ,")
    monkeypatch.setenv("HERALD_REPORT_TIME", "07:30")
    monkeypatch.setenv("HERALD_REPORT_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("HERALD_SMTP_TLS", "starttls")
    monkeypatch.setenv("HERALD_SMTP_USERNAME", "")  # compose's ${VAR:-}
    monkeypatch.setenv("HERALD_SMTP_PASSWORD", "")

    settings = ReporterSettings(_env_file=None)

    assert settings.report_recipients == ["ops@example.com", "lead@example.com"]
    assert settings.report_time == time(7, 30)
    assert settings.zone.key == "Europe/Berlin"
    assert settings.smtp_tls is SmtpTls.starttls
    assert (settings.smtp_username, settings.smtp_password) == (None, None)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"report_timezone": "Europe/Atlantis"}, "unknown time zone"),
        ({"report_recipients": "ops@example.com; lead@example.com"}, "not an email address"),
        ({"smtp_from": "herald"}, "not an email address"),
        ({"report_lease": 100.0}, "HERALD_REPORT_LEASE"),
        ({"smtp_username": "reporter"}, "HERALD_SMTP_PASSWORD is not"),
        ({"smtp_tls": "ssl"}, "smtp_tls"),
    ],
)
def test_bad_values_are_refused_with_the_reason(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ReporterSettings(_env_file=None, **values)  # type: ignore[arg-type]


def test_the_password_is_never_in_the_settings_repr() -> None:
    settings = ReporterSettings(
        _env_file=None, smtp_username="reporter", smtp_password="hunter2-smtp"
    )
    assert "hunter2-smtp" not in repr(settings)
    assert "hunter2-smtp" not in str(settings.model_dump())
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "hunter2-smtp"
