"""The clients a run works on: generated CSV for the bulk import, or rows written straight
into a fresh database (for runs that measure something other than the import)."""

from collections.abc import Iterator

import psycopg

# Clients spread over zones a few hours apart; mailings have no send window, so every
# client is due at once and only the frame matters.
TIMEZONES = (
    "Europe/Moscow",
    "Europe/Kaliningrad",
    "Asia/Yekaterinburg",
    "Asia/Novosibirsk",
    "Asia/Vladivostok",
)
BENCH_TAG = "bench"
CSV_ROWS_PER_CHUNK = 10_000


def phone(n: int) -> str:
    """The n-th benchmark phone number, 7 and ten digits (n < 10**9)."""
    return f"79{n:09d}"


def csv_chunks(count: int, *, first: int = 0) -> Iterator[bytes]:
    """A CSV body of ``count`` clients, produced chunk by chunk (never whole in memory)."""
    yield b"phone,operator_code,tag,timezone\n"
    for start in range(first, first + count, CSV_ROWS_PER_CHUNK):
        stop = min(start + CSV_ROWS_PER_CHUNK, first + count)
        yield "".join(
            f"{phone(n)},{phone(n)[1:4]},{BENCH_TAG},{TIMEZONES[n % len(TIMEZONES)]}\n"
            for n in range(start, stop)
        ).encode()


_SEED = """
INSERT INTO clients (phone, operator_code, tag, timezone)
SELECT p.phone, substr(p.phone, 2, 3), %(tag)s, (%(zones)s::text[])[1 + n %% %(zone_count)s::int]
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
CROSS JOIN LATERAL (SELECT '79' || lpad(n::text, 9, '0') AS phone) AS p
"""


def seed_clients(libpq_url: str, count: int, *, first: int = 0) -> None:
    """Write ``count`` matching clients directly (no outbox events: no mailing exists yet)."""
    with psycopg.connect(libpq_url, autocommit=True) as connection:
        connection.execute(
            _SEED,
            {
                "tag": BENCH_TAG,
                "zones": list(TIMEZONES),
                "zone_count": len(TIMEZONES),
                "first": first,
                "last": first + count - 1,
            },
        )
        connection.execute("ANALYZE clients")
