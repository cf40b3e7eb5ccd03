"""The ``herald`` admin CLI, run as integrators run it: the venv's ``herald`` script."""

import asyncio
import os
import re
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.system import BIN
from herald_common.db import migrate

ROOT = Path(__file__).resolve().parents[3]
KEY_LINE = re.compile(r"hk_[A-Za-z0-9_-]{8}_[A-Za-z0-9_-]{32,}\n")
UNREACHABLE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/herald"


async def herald(*args: str, database_url: str) -> tuple[int, str, str]:
    environment = {**os.environ, "HERALD_DATABASE_URL": database_url, "HERALD_LOG_FORMAT": "json"}
    process = await asyncio.create_subprocess_exec(
        str(BIN / "herald"), *args,
        cwd=ROOT, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_api_key_create_list_revoke(
    database_url: str, clean_db: AsyncEngine, anonymous: httpx.AsyncClient
) -> None:
    code, stdout, stderr = await herald(
        "api-key", "create", "--name", "crm", database_url=database_url
    )

    assert code == 0, stderr
    assert KEY_LINE.fullmatch(stdout), stdout
    key = stdout.strip()
    headers = {"Authorization": f"Bearer {key}"}
    assert (await anonymous.get("/api/v1/clients", headers=headers)).status_code == 200

    code, listing, _ = await herald("api-key", "list", database_url=database_url)
    assert code == 0
    [row] = [line for line in listing.splitlines() if " crm " in line]
    key_id = row.split()[0]
    assert key[3:11] in row
    assert key not in listing
    assert row.split()[-1] == "-"

    code, _, stderr = await herald("api-key", "revoke", key_id, database_url=database_url)
    assert code == 0, stderr
    assert (await anonymous.get("/api/v1/clients", headers=headers)).status_code == 401


async def test_revoking_an_unknown_key_fails(database_url: str, clean_db: AsyncEngine) -> None:
    code, stdout, stderr = await herald("api-key", "revoke", "999999", database_url=database_url)

    assert code == 1
    assert stdout == ""
    assert "no API key with id 999999" in stderr


@pytest.mark.parametrize("args", [("migrate",), ("api-key", "create", "--name", "x")])
async def test_an_unreachable_database_is_one_clear_line_and_exit_2(args: tuple[str, ...]) -> None:
    code, stdout, stderr = await herald(*args, database_url=UNREACHABLE_URL)

    assert code == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "cannot reach PostgreSQL at 127.0.0.1:1" in stderr
    assert "pg_ctlcluster --skip-systemctl-redirect 15 main start" in stderr
    assert "HERALD_DATABASE_URL" in stderr
    assert "Traceback" not in stderr


async def test_migrate_creates_the_database_and_applies_every_migration(
    database_server_url: str,
) -> None:
    url = (
        make_url(database_server_url)
        .set(database=f"herald_cli_{uuid.uuid4().hex[:8]}")
        .render_as_string(hide_password=False)
    )
    try:
        first = await herald("migrate", database_url=url)
        again = await herald("migrate", database_url=url)
    finally:
        migrate.drop_database(url)

    assert first[0] == 0, first[2]
    assert "created and migrated" in first[2]
    assert again[0] == 0, again[2]
    assert "created" not in again[2]
