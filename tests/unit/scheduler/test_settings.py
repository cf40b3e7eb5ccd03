"""The scheduler's knobs come from HERALD_* variables."""

import pytest

from herald_scheduler.settings import ScheduleSettings


def test_defaults() -> None:
    settings = ScheduleSettings(_env_file=None)
    assert (settings.send_batch_size, settings.dispatch_interval) == (100, 0.25)
    assert settings.scheduler_metrics_port == 9101


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_SEND_BATCH_SIZE", "7")
    monkeypatch.setenv("HERALD_DISPATCH_INTERVAL", "0.5")
    monkeypatch.setenv("HERALD_DISPATCH_CLAIM", "3000")
    monkeypatch.setenv("HERALD_RECONCILE_INTERVAL", "2")
    monkeypatch.setenv("HERALD_SCHEDULER_METRICS_PORT", "0")
    settings = ScheduleSettings(_env_file=None)
    assert settings.send_batch_size == 7
    assert settings.dispatch_interval == 0.5
    assert settings.dispatch_claim == 3000
    assert settings.reconcile_interval == 2
    assert settings.scheduler_metrics_port == 0
