"""``herald-reporter`` and ``herald report`` as an operator runs them: the venv's scripts."""

import asyncio
import os
import re
import signal
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from bench.system import BIN
from herald_common.domain import MessageStatus
from herald_reporter.schedule import report_day
from tests.integration.reporter.conftest import SmtpServers, free_port
from tests.integration.reporter.factories import Seed, add_messages, claim_rows, create_mailing

DAY = date(2025, 6, 11)
UNREACHABLE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/herald"


def _environment(database_url: str, smtp_port: int, **extra: str) -> dict[str, str]:
    # Nothing of the test's own HERALD_* environment leaks in.
    base = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    return {
        **base,
        "HERALD_DATABASE_URL": database_url,
        "HERALD_SMTP_PORT": str(smtp_port),
        "HERALD_SMTP_FROM": "herald@reports.example.com",
        "HERALD_REPORT_RECIPIENTS": "ops@example.com, lead@example.com",
        "HERALD_REPORT_TIMEZONE": "Europe/Berlin",
        "HERALD_LOG_FORMAT": "json",
        **extra,
    }


async def _script(
    script: str, *args: str, env: Mapping[str, str], cwd: Path
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / script), *args,
        cwd=cwd, env=dict(env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _said(stderr: str) -> list[str]:
    """The CLI's own lines on stderr (not the JSON log lines)."""
    return [line for line in stderr.splitlines() if line.startswith("herald-reporter: ")]


async def _seed(engine: AsyncEngine) -> int:
    bounds = report_day(DAY, ZoneInfo("Europe/Berlin"))
    mailing = await create_mailing(
        engine,
        start_at=bounds.start + timedelta(hours=8),
        end_at=bounds.start + timedelta(hours=20),
        text_="Flash sale <i>now</i>",
    )
    at = bounds.start + timedelta(hours=9)
    await add_messages(
        engine, mailing, [Seed(MessageStatus.sent, at, 1)] * 3 + [Seed(MessageStatus.expired, at)]
    )
    return mailing


async def test_preview_writes_the_parts_to_files_or_stdout(
    report_db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    mailing = await _seed(report_db)
    env = _environment(database_url, 1, HERALD_ADMIN_URL="https://h.example/admin")
    html, text = tmp_path / "report.html", tmp_path / "report.txt"

    code, stdout, stderr = await _script(
        "herald-reporter", "preview", "--date", "2025-06-11", "--html", str(html), "--text",
        str(text), env=env, cwd=tmp_path,
    )  # fmt: skip
    to_stdout = await _script(
        "herald-reporter", "preview", "--date", "2025-06-11", env=env, cwd=tmp_path
    )

    assert code == 0, stderr
    assert stdout == ""
    assert "Flash sale &lt;i&gt;now&lt;/i&gt;" in html.read_text()
    assert f"https://h.example/admin/mailings/{mailing}" in html.read_text()
    assert "Processed" in text.read_text()
    assert "75.0%" in text.read_text()
    assert to_stdout[0] == 0
    assert to_stdout[1] == text.read_text() + html.read_text(), "text first, then the HTML"
    assert await claim_rows(report_db) == {}, "a preview claims nothing"


async def test_a_bad_date_is_one_clear_error(database_url: str, tmp_path: Path) -> None:
    env = _environment(database_url, 1)
    for bad, reason in (
        ("11.06.2025", "is not a date as YYYY-MM-DD"),
        ("2025-02-30", "is no such day"),
    ):
        code, stdout, stderr = await _script(
            "herald-reporter", "send", "--date", bad, env=env, cwd=tmp_path
        )
        assert code == 2
        assert stdout == ""
        assert f"argument --date: '{bad}' {reason}" in stderr
        assert "Traceback" not in stderr


async def test_send_is_refused_or_accepted_by_the_claim(
    report_db: AsyncEngine, database_url: str, tmp_path: Path, smtp: SmtpServers
) -> None:
    server = await smtp.start()
    await _seed(report_db)
    env = _environment(database_url, server.port)

    sent = await _script("herald-reporter", "send", "--date", "2025-06-11", env=env, cwd=tmp_path)
    refused = await _script(
        "herald-reporter", "send", "--date", "2025-06-11", env=env, cwd=tmp_path
    )
    forced = await _script(
        "herald-reporter", "send", "--date", "2025-06-11", "--force", env=env, cwd=tmp_path
    )

    assert sent[0] == 0, sent[2]
    assert _said(sent[2]) == [
        "herald-reporter: the report for 2025-06-11 was sent to ops@example.com, lead@example.com"
        " (Message-ID <herald-report.2025-06-11@reports.example.com>)"
    ]
    assert refused[0] == 1
    [line] = _said(refused[2])
    assert "not sent: the report for 2025-06-11 was sent already at" in line
    assert "--force sends it again" in line
    assert forced[0] == 0, forced[2]
    assert [m["Message-ID"] for m in server.mailbox.messages()] == [
        "<herald-report.2025-06-11@reports.example.com>",
        "<herald-report.2025-06-11.2@reports.example.com>",
    ]


async def test_two_processes_racing_for_a_day_send_one_mail(
    report_db: AsyncEngine, database_url: str, tmp_path: Path, smtp: SmtpServers
) -> None:
    server = await smtp.start()
    env = _environment(database_url, server.port)

    results = await asyncio.gather(
        *(
            _script("herald-reporter", "send", "--date", "2025-06-11", env=env, cwd=tmp_path)
            for _ in range(3)
        )
    )

    assert sorted(code for code, _, _ in results) == [0, 1, 1], results
    assert len(server.mailbox.stored) == 1
    for code, _, stderr in results:
        if code == 1:
            [line] = _said(stderr)
            assert re.search(r"(is being sent by|was sent already at)", line), line


async def test_send_refuses_a_day_that_is_not_over(database_url: str, tmp_path: Path) -> None:
    today = date.today() + timedelta(days=1)
    code, _, stderr = await _script(
        "herald-reporter", "send", "--date", today.isoformat(),
        env=_environment(database_url, 1), cwd=tmp_path,
    )  # fmt: skip

    assert code == 2
    assert f"{today} is not over yet in Europe/Berlin" in stderr


async def test_send_needs_recipients_and_a_reachable_database(
    database_url: str, tmp_path: Path
) -> None:
    no_one = _environment(database_url, 1, HERALD_REPORT_RECIPIENTS="")
    code, _, stderr = await _script(
        "herald-reporter", "send", "--date", "2025-06-11", env=no_one, cwd=tmp_path
    )
    assert code == 2
    assert _said(stderr) == [
        "herald-reporter: HERALD_REPORT_RECIPIENTS is empty:"
        " set the addresses to mail the report to"
    ]

    unreachable = _environment(UNREACHABLE_URL, 1)
    code, stdout, stderr = await _script(
        "herald-reporter", "send", "--date", "2025-06-11", env=unreachable, cwd=tmp_path
    )
    assert code == 2
    assert stdout == ""
    [line] = _said(stderr)
    assert "cannot reach PostgreSQL at 127.0.0.1:1" in line
    assert "Traceback" not in stderr

    bad = _environment(database_url, 1, HERALD_REPORT_TIMEZONE="Mars/Olympus")
    code, _, stderr = await _script(
        "herald-reporter", "preview", "--date", "2025-06-11", env=bad, cwd=tmp_path
    )
    assert code == 2
    assert "HERALD_REPORT_TIMEZONE" in stderr
    assert "Mars/Olympus" in stderr


async def test_herald_report_forwards_to_the_reporter(
    report_db: AsyncEngine, database_url: str, tmp_path: Path, smtp: SmtpServers
) -> None:
    server = await smtp.start()
    env = _environment(database_url, server.port)

    helped = await _script("herald", "report", "--help", env=env, cwd=tmp_path)
    sent = await _script("herald", "report", "send", "--date", "2025-06-11", env=env, cwd=tmp_path)
    refused = await _script(
        "herald", "report", "send", "--date", "2025-06-11", env=env, cwd=tmp_path
    )
    bad = await _script("herald", "report", "preview", "--date", "tomorrow", env=env, cwd=tmp_path)

    assert helped[0] == 0
    assert "usage: herald-reporter" in helped[1]
    assert {"run", "send", "preview"} <= set(re.findall(r"\b(run|send|preview)\b", helped[1]))
    assert (sent[0], refused[0], bad[0]) == (0, 1, 2)
    assert len(server.mailbox.stored) == 1
    assert "'tomorrow' is not a date as YYYY-MM-DD" in bad[2]


async def test_the_mail_sink_stores_each_mail_and_says_where(
    report_db: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    folder = tmp_path / "var" / "mail"
    sink = await asyncio.create_subprocess_exec(
        str(BIN / "herald-mail-sink"), "--host", "127.0.0.1", "--port", str(port),
        "--dir", str(folder),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert sink.stdout is not None
        listening = (await asyncio.wait_for(sink.stdout.readline(), 30)).decode()
        assert listening.strip() == (
            f"herald-mail-sink: listening on 127.0.0.1:{port}, storing mail in {folder}"
        )

        code, _, stderr = await _script(
            "herald-reporter", "send", "--date", "2025-06-11",
            env=_environment(database_url, port), cwd=tmp_path,
        )  # fmt: skip
        stored = (await asyncio.wait_for(sink.stdout.readline(), 30)).decode()
    finally:
        sink.send_signal(signal.SIGTERM)
        stopped, _ = await asyncio.wait_for(sink.communicate(), 15)

    assert code == 0, stderr
    [eml] = list(folder.glob("*.eml"))
    assert stored.startswith(f"herald-mail-sink: stored {eml} (from herald@reports.example.com")
    assert b"Message-ID: <herald-report.2025-06-11@reports.example.com>" in eml.read_bytes()
    assert sink.returncode == 0
    assert "1 mail(s) stored" in stopped.decode()
