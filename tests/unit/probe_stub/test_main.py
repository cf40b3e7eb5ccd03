"""The command line: flags, their HERALD_STUB_* twins, and clear errors for bad values."""

import argparse
from pathlib import Path

import pytest

from herald_probe_stub.config import OutageWindow
from herald_probe_stub.main import build_parser, config_from, main, parse_options


def _parse(argv: list[str], environ: dict[str, str] | None = None) -> argparse.Namespace:
    environ = environ or {}
    return parse_options(build_parser(environ), argv, environ)


def test_defaults_match_the_brief() -> None:
    options = _parse([])
    config = config_from(options, started_at=0.0)

    assert (options.host, options.port, options.seed, options.record) == (
        "127.0.0.1",
        8090,
        None,
        None,
    )
    assert config.token == "dev-probe-token"
    assert config.hang_seconds == 30.0
    assert config.rate_limit == 0.0
    assert config.outage_mode == "503"
    assert config.outages == ()


def test_flags_set_the_config_and_outages_count_from_the_start() -> None:
    options = _parse(
        [
            "--port=9000",
            "--token=",
            "--error-rate=0.5",
            "--latency-ms=20",
            "--jitter-ms=5",
            "--outage=10:20",
            "--outage=60:5.5",
            "--outage-mode=reset",
            "--seed=3",
        ]
    )
    config = config_from(options, started_at=100.0)

    assert options.port == 9000
    assert options.seed == 3
    assert config.token is None
    assert (config.error_rate, config.latency_ms, config.jitter_ms) == (0.5, 20.0, 5.0)
    assert config.outages == (OutageWindow(110.0, 130.0), OutageWindow(160.0, 165.5))
    assert config.outage_mode == "reset"


def test_the_environment_supplies_defaults_and_flags_override_it() -> None:
    environ = {
        "HERALD_STUB_PORT": "9100",
        "HERALD_STUB_RESET_RATE": "0.25",
        "HERALD_STUB_OUTAGE": "5:10, 30:1",
        "HERALD_STUB_TOKEN": "secret",
        "HERALD_STUB_RECORD": "requests.ndjson",
    }

    options = _parse(["--port", "9200"], environ)
    config = config_from(options, started_at=0.0)

    assert options.port == 9200
    assert str(options.record) == "requests.ndjson"
    assert config.reset_rate == 0.25
    assert config.token == "secret"
    assert config.outages == (OutageWindow(5.0, 15.0), OutageWindow(30.0, 31.0))


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--error-rate", "1.5"], {}, "--error-rate: must be a probability"),
        (["--hang-rate", "often"], {}, "--hang-rate: must be a number"),
        (["--latency-ms", "-3"], {}, "--latency-ms: must be >= 0"),
        (["--port", "70000"], {}, "--port: must be a port number"),
        (["--outage", "10"], {}, "--outage: must be START:DURATION"),
        (["--outage", "10:0"], {}, "--outage: an outage's duration must be > 0"),
        (["--outage-mode", "drop"], {}, "--outage-mode: invalid choice"),
        (["--seed", "x"], {}, "--seed: must be an integer"),
        ([], {"HERALD_STUB_MALFORMED_RATE": "2"}, "--malformed-rate: must be a probability"),
        ([], {"HERALD_STUB_OUTAGE": "1:2,oops"}, "HERALD_STUB_OUTAGE: must be START:DURATION"),
        ([], {"HERALD_STUB_OUTAGE_MODE": "drop"}, "HERALD_STUB_OUTAGE_MODE: must be one of"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_it(
    argv: list[str], environ: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _parse(argv, environ)

    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_record_file_that_cannot_be_opened_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--record", str(tmp_path / "missing" / "requests.ndjson")])

    assert exited.value.code == 2
    assert "--record: cannot open" in capsys.readouterr().err
