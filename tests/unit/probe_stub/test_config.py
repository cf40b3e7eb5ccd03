"""The stub's config: every field validated with its name, outages relative to a moment."""

import pytest

from herald_probe_stub.config import ConfigError, OutageWindow, StubConfig


def test_updated_changes_only_the_fields_given() -> None:
    config = StubConfig().updated({"error_rate": 0.25, "latency_ms": 40}, now=0.0)

    assert config.error_rate == 0.25
    assert config.latency_ms == 40.0
    assert config.hang_seconds == StubConfig().hang_seconds
    assert config.token == "dev-probe-token"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"reset_rate": -0.1}, "reset_rate"),
        ({"hang_rate": True}, "hang_rate"),
        ({"latency_ms": "10"}, "latency_ms"),
        ({"jitter_ms": -1}, "jitter_ms"),
        ({"rate_limit": None}, "rate_limit"),
        ({"outage_mode": "502"}, "outage_mode"),
        ({"outages": [[0]]}, "outages"),
        ({"outages": [[0, 0]]}, "outages"),
        ({"outages": "0:10"}, "outages"),
        ({"token": 5}, "token"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_value_names_its_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        StubConfig().updated(changes, now=0.0)

    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_an_empty_or_null_token_turns_authentication_off() -> None:
    assert StubConfig().updated({"token": ""}, now=0.0).token is None
    assert StubConfig().updated({"token": None}, now=0.0).token is None
    assert StubConfig().updated({"token": "t"}, now=0.0).token == "t"


def test_outages_set_through_an_update_start_relative_to_now() -> None:
    config = StubConfig().updated({"outages": [[10, 20], [-5, 10]]}, now=100.0)

    assert config.outages == (OutageWindow(110.0, 130.0), OutageWindow(95.0, 105.0))
    assert config.in_outage(96.0)
    assert not config.in_outage(105.0)
    assert config.in_outage(110.0)
    assert not config.in_outage(130.0)


def test_rendered_outages_are_relative_to_now_and_drop_the_past() -> None:
    config = StubConfig(outages=(OutageWindow(95.0, 105.0), OutageWindow(50.0, 60.0)))

    rendered = config.to_json(now=100.0)

    assert rendered["outages"] == [[-5.0, 10.0]]
    # What GET shows, PUT takes back unchanged.
    assert config.updated({"outages": rendered["outages"]}, now=100.0).outages[0] == (
        OutageWindow(95.0, 105.0)
    )
