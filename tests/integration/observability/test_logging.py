"""configure_logging: one JSON object per line with the service, library lines included."""

import subprocess
import sys

import orjson

PROGRAM = """
import logging, warnings, structlog
from herald_common.logging import configure_logging
configure_logging("sender", fmt="json")
structlog.contextvars.bind_contextvars(mailing_id=7, correlation_id="c-1")
structlog.get_logger().info("message.attempt", message_id=3, status=200)
logging.getLogger("aio_pika").warning("connection %s lost", "amqp")
warnings.warn("something old", DeprecationWarning, stacklevel=1)
try:
    raise ValueError("boom")
except ValueError:
    structlog.get_logger().exception("command.crashed")
"""


def test_every_line_is_json_and_carries_the_service_and_bound_ids() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", PROGRAM], capture_output=True, check=True
    )

    lines = [orjson.loads(line) for line in result.stderr.splitlines()]
    assert len(lines) == 4, result.stderr
    for line in lines:
        assert line["service"] == "sender"
        assert line["mailing_id"] == 7
        assert line["correlation_id"] == "c-1"
        assert {"level", "timestamp"} <= line.keys()
    assert lines[0]["event"] == "message.attempt"
    assert lines[0]["message_id"] == 3
    assert lines[1]["logger"] == "aio_pika"
    assert lines[1]["event"] == "connection amqp lost"
    assert lines[2]["logger"] == "py.warnings"
    assert "ValueError: boom" in lines[3]["exception"]


def test_a_terminal_gets_readable_lines() -> None:
    program = (
        "import structlog\nfrom herald_common.logging import configure_logging\n"
        "configure_logging('api', fmt='console')\nstructlog.get_logger().info('api.started')\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, check=True)

    assert b"api.started" in result.stderr
    assert not result.stderr.lstrip().startswith(b"{")
