"""The operator controls end to end, as separate processes against the stub at about
200 ms per request: a pause stops every request within a second and expires nothing, a
resume finishes the mailing with each message sent exactly once, a cancel stops it and
keeps it readable, and a delete stops it and makes it a 404."""

import time
from collections import Counter
from typing import Any

import pytest

from tests.e2e import ledger
from tests.e2e.conftest import StartSystem
from tests.e2e.system import System
from tests.e2e.test_dispatch import (
    assert_statistics_match_ledger,
    create_mailing,
    import_clients,
    ok_ids,
    phone,
    wait_all_final,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)

CLIENTS = 2000
# Two senders with 10 requests each in flight, 200 ms a request: about 100 messages a
# second, so the mailing is still sending when a control is used 2 s in.
SLOW_API = {"env": {"HERALD_SENDER_CONCURRENCY": "10"}, "stub_args": ["--latency-ms", "200"]}
# How long a change may take to reach every sender, and how long to watch after it.
PROPAGATION = 1.0
WATCH = 4.0


def running_mailing(system: System) -> int:
    """A mailing to CLIENTS clients, 2 s into its sending."""
    import_clients(system, [(phone(n), "900", "a", "Europe/Moscow") for n in range(CLIENTS)])
    mailing = create_mailing(system)
    wait_for(lambda: len(system.stub_received()) > 0, 30, "the first sends")
    time.sleep(2)
    mailing_id: int = mailing["id"]
    return mailing_id


def control(system: System, mailing_id: int, action: str, status: str) -> float:
    """Use a control; when its answer came (the change is committed by then)."""
    with system.api as api:
        response = api.post(f"/mailings/{mailing_id}/{action}")
    answered_at = time.time()
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    return answered_at


def started_between(system: System, since: float, until: float = float("inf")) -> list[Any]:
    """The requests the stub received in [since, until), of any mailing."""
    return [r for r in system.stub_received() if since <= r["received_at"] < until]


def test_a_pause_stops_every_request_within_a_second_and_a_resume_finishes_it(
    start_system: StartSystem,
) -> None:
    system = start_system(**SLOW_API)
    mailing_id = running_mailing(system)

    paused_at = control(system, mailing_id, "pause", "paused")
    time.sleep(PROPAGATION + WATCH)

    assert started_between(system, paused_at + PROPAGATION) == []
    before = len(system.stub_received())
    assert 0 < before < CLIENTS, "the pause must land mid-mailing"
    # Nothing expired or cancelled by the pause: what was not sent waits, as scheduled.
    wait_for(
        lambda: set(ledger.statuses(system.database_url, mailing_id)) <= {"sent", "scheduled"},
        20,
        "every held message to be handed back",
    )
    counts = ledger.statuses(system.database_url, mailing_id)
    assert sum(counts.values()) == CLIENTS
    assert counts["sent"] == len(ok_ids(system.stub_received()))
    rows = ledger.messages(system.database_url, mailing_id)
    assert {r["attempts"] for r in rows if r["status"] == "scheduled"} == {0}
    assert len(system.stub_received()) == before
    with system.api as api:
        assert api.get(f"/mailings/{mailing_id}").json()["status"] == "paused"

    resuming_at = time.time()
    control(system, mailing_id, "resume", "running")
    wait_all_final(system, mailing_id, CLIENTS, timeout=120)

    # Nothing at all while it was paused, from the pause plus a second to the resume.
    assert started_between(system, paused_at + PROPAGATION, resuming_at) == []
    sent = ok_ids(system.stub_received())
    assert len(sent) == CLIENTS
    assert max(sent.values()) == 1, "a message was sent twice"
    assert ledger.statuses(system.database_url, mailing_id) == Counter(sent=CLIENTS)
    assert_statistics_match_ledger(system, mailing_id)


def test_a_cancel_stops_sending_and_the_mailing_stays_readable(start_system: StartSystem) -> None:
    system = start_system(**SLOW_API)
    mailing_id = running_mailing(system)

    cancelled_at = control(system, mailing_id, "cancel", "cancelled")
    wait_all_final(system, mailing_id, CLIENTS, timeout=60)
    time.sleep(WATCH)

    assert started_between(system, cancelled_at + PROPAGATION) == []
    # A request in flight at the cancel may still have been accepted: the ledger says so.
    accepted = len(ok_ids(system.stub_received()))
    wait_for(
        lambda: ledger.statuses(system.database_url, mailing_id)["sent"] == accepted,
        60,
        "the ledger to record every accepted request as sent",
    )
    counts = ledger.statuses(system.database_url, mailing_id)
    assert set(counts) == {"sent", "cancelled"}
    assert counts["cancelled"] > CLIENTS / 2
    with system.api as api:
        assert api.get(f"/mailings/{mailing_id}").json()["status"] == "cancelled"
        stats = api.get(f"/mailings/{mailing_id}/stats").json()
    assert stats["counts"]["cancelled"] == counts["cancelled"]
    assert_statistics_match_ledger(system, mailing_id)


def test_a_delete_stops_sending_and_the_mailing_is_a_404(start_system: StartSystem) -> None:
    system = start_system(**SLOW_API)
    mailing_id = running_mailing(system)

    with system.api as api:
        assert api.delete(f"/mailings/{mailing_id}").status_code == 204
    deleted_at = time.time()
    wait_all_final(system, mailing_id, CLIENTS, timeout=60)
    time.sleep(WATCH)

    assert started_between(system, deleted_at + PROPAGATION) == []
    accepted = len(ok_ids(system.stub_received()))
    wait_for(
        lambda: ledger.statuses(system.database_url, mailing_id)["sent"] == accepted,
        60,
        "the ledger to record every accepted request as sent",
    )
    counts = ledger.statuses(system.database_url, mailing_id)
    assert set(counts) == {"sent", "cancelled"}
    ledger.assert_counters_match_ledger(system.database_url, mailing_id)
    with system.api as api:
        for path in ("", "/stats", "/messages"):
            assert api.get(f"/mailings/{mailing_id}{path}").status_code == 404, path
        overview = api.get("/stats").json()
    # Gone from the list, still in the totals: its messages are history.
    assert overview["items"] == []
    assert overview["totals"]["total"] == CLIENTS
    assert overview["totals"]["sent"] == counts["sent"]
