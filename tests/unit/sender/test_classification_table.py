"""The README's table of how each answer is classified, checked row by row against
judge(): the table is the one statement of the rule, and this test keeps it true."""

from pathlib import Path

from herald_sender.classification import Judgement, judge, judge_transport_error
from herald_sender.probe_client import ProbeConnectionError, ProbeResponse, ProbeTimeout

README = Path(__file__).parents[3] / "README.md"

# One answer per row, by the row's first cell.
SAMPLES: dict[str, Judgement] = {
    "200, JSON object, integer `code` == 0": judge(ProbeResponse(200, b'{"code": 0}', 0.01)),
    "200, integer `code` != 0": judge(ProbeResponse(200, b'{"code": 3}', 0.01)),
    "200, not JSON / not an object / `code` not an integer": judge(
        ProbeResponse(200, b"<html>", 0.01)
    ),
    "other 1xx/2xx/3xx (redirects are not followed)": judge(ProbeResponse(302, b"", 0.01)),
    "429 (Retry-After honoured)": judge(ProbeResponse(429, b"", 0.01)),
    "5xx": judge(ProbeResponse(503, b"busy", 0.01)),
    "timeout": judge_transport_error(ProbeTimeout("timed out", 2.0)),
    "connection refused or reset, truncated answer": judge_transport_error(
        ProbeConnectionError("reset", 0.01)
    ),
    "401": judge(ProbeResponse(401, b"", 0.01)),
    "400 and any other 4xx": judge(ProbeResponse(404, b"", 0.01)),
}


def readme_rows() -> list[list[str]]:
    text = README.read_text()
    table = text[text.index("| answer | result | error_class | circuit breaker |") :]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


# What the table's "result" column says for each verdict.
RESULTS = {
    "sent": "`sent`",
    "transient": "retry",
    "permanent": "`failed`",
    "unauthorized": "deferred",
}
NONE = "\u2013"  # the table's dash for "no error class"


def test_every_row_of_the_readme_table_is_what_judge_says() -> None:
    rows = readme_rows()

    assert [row[0] for row in rows] == list(SAMPLES)
    for answer, result, error_class, circuit in rows:
        judged = SAMPLES[answer]
        assert RESULTS[judged.verdict.value] in result, answer
        expected_class = None if error_class == NONE else error_class.strip("`")
        assert (judged.error_class.value if judged.error_class else None) == expected_class, answer
        # "failure", "failure (not when cut short ...)" and "opens at once" count against
        # the API; "success" does not.
        assert judged.circuit_failure == (not circuit.startswith("success")), answer
