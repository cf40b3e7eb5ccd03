"""Every client change writes its client journal entry in the change's own transaction."""

from datetime import datetime

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.clients.importer import CHUNK_ROWS
from tests.integration.api.factories import client_body

CLIENTS = "/api/v1/clients"
Sessions = async_sessionmaker[AsyncSession]


async def journal(sessionmaker: Sessions) -> dict[int, tuple[int, datetime]]:
    """client_id -> (revision, pending_since) of every entry."""
    async with sessionmaker() as session:
        rows = await session.execute(
            text("SELECT client_id, revision, pending_since FROM client_changes")
        )
        return {row.client_id: (row.revision, row.pending_since) for row in rows}


async def test_create_update_and_delete_each_draw_a_new_revision(
    api: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    created = await api.post(CLIENTS, json=client_body(1))
    client_id = created.json()["id"]
    first, since = (await journal(sessionmaker))[client_id]

    assert (await api.patch(f"{CLIENTS}/{client_id}", json={"tag": "vip"})).status_code == 200
    updated, updated_since = (await journal(sessionmaker))[client_id]
    assert (await api.delete(f"{CLIENTS}/{client_id}")).status_code == 204
    deleted, deleted_since = (await journal(sessionmaker))[client_id]

    assert first < updated < deleted
    # Still pending since the first change: a client that keeps changing still gets its
    # turn in the catch-up.
    assert since == updated_since == deleted_since


async def test_changes_that_change_nothing_or_fail_write_no_entry(
    api: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    client_id = (await api.post(CLIENTS, json=client_body(1))).json()["id"]
    await api.post(CLIENTS, json=client_body(2))
    before = await journal(sessionmaker)

    assert (await api.patch(f"{CLIENTS}/{client_id}", json={})).status_code == 200
    taken = client_body(2)["phone"]
    conflict = await api.patch(f"{CLIENTS}/{client_id}", json={"phone": taken})
    assert conflict.status_code == 409
    assert (await api.post(CLIENTS, json=client_body(2))).status_code == 409
    assert (await api.delete(f"{CLIENTS}/{client_id + 100}")).status_code == 404

    assert await journal(sessionmaker) == before


async def test_an_import_writes_an_entry_per_client_it_created_or_updated(
    api: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    existing = (await api.post(CLIENTS, json=client_body(1, timezone="UTC"))).json()["id"]
    existing_revision, _ = (await journal(sessionmaker))[existing]
    rows = [f"{client_body(n)['phone']},UTC" for n in range(1, CHUNK_ROWS + 3)]
    body = "phone,timezone\n" + "\n".join(rows) + "\n"

    response = await api.post(
        f"{CLIENTS}/import",
        content=body.encode(),
        headers={"Content-Type": "text/csv"},
        params={"upsert": "true"},
    )

    assert response.status_code == 200
    assert (response.json()["created"], response.json()["updated"]) == (CHUNK_ROWS + 1, 1)
    entries = await journal(sessionmaker)
    async with sessionmaker() as session:
        client_ids = set((await session.scalars(text("SELECT id FROM clients"))).all())
    assert set(entries) == client_ids
    assert entries[existing][0] > existing_revision
