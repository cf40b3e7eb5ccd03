"""The printed table: targets with marks, dispatch runs beside the previous run's."""

from bench.report import render, table
from bench.targets import judge_all
from tests.bench.figures import dispatch_result, document


def test_the_table_marks_targets_and_shows_the_previous_run() -> None:
    now_runs = [dispatch_result(msgs_per_s=800)]
    before_runs = [dispatch_result(msgs_per_s=650)]
    now = document(now_runs, judge_all(now_runs))
    previous = document(before_runs, judge_all(before_runs))

    text = render(now, previous)

    assert "FAIL" in text  # 800 msg/s is below 3,000
    assert "PASS" in text  # no duplicates
    target_row = next(line for line in text.splitlines() if "end to end, messages/s" in line)
    assert "800" in target_row
    assert "650" in target_row
    assert "  previous" in text  # the dispatch run's row from the earlier file
    assert "bench-20300101T000000Z.json" in text


def test_without_a_previous_run_it_says_so() -> None:
    runs = [dispatch_result()]

    text = render(document(runs, judge_all(runs)), None)

    assert "previous: none" in text
    assert "GET /mailings/{id}/stats" in text


def test_columns_line_up() -> None:
    text = table(["name", "value"], [["a", "1"], ["longer", "12345"]])

    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[2].endswith("    1")
