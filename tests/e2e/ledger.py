"""Read-only views of a running herald's ledger for assertions in end-to-end tests."""

from collections import Counter
from typing import Any

from sqlalchemy import create_engine, text

from herald_common.domain import FINAL_STATUSES, MessageStatus


def query(database_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def statuses(database_url: str, mailing_id: int) -> Counter[str]:
    rows = query(
        database_url,
        "SELECT status, count(*) AS n FROM messages WHERE mailing_id = :id GROUP BY status",
        id=mailing_id,
    )
    return Counter({row["status"]: row["n"] for row in rows})


def all_final(database_url: str, mailing_id: int) -> bool:
    counts = statuses(database_url, mailing_id)
    return sum(counts.values()) > 0 and all(MessageStatus(s) in FINAL_STATUSES for s in counts)


def assert_counters_match_ledger(database_url: str, mailing_id: int) -> None:
    recount = statuses(database_url, mailing_id)
    counters = query(
        database_url, "SELECT * FROM mailing_counters WHERE mailing_id = :id", id=mailing_id
    )
    assert len(counters) == 1, f"mailing {mailing_id} has no counters row"
    for status in MessageStatus:
        assert counters[0][status.value] == recount.get(status.value, 0), (
            f"counter {status.value}={counters[0][status.value]} but the ledger has "
            f"{recount.get(status.value, 0)}"
        )


def messages(database_url: str, mailing_id: int) -> list[dict[str, Any]]:
    return query(
        database_url, "SELECT * FROM messages WHERE mailing_id = :id ORDER BY id", id=mailing_id
    )
