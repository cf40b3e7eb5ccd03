"""HERALD_PROBE_RATE_LIMIT across four sender processes, against the stub: the external
API sees at most the limit in every second, and close to it while there is a backlog;
when the API answers 429, the senders slow down and still deliver everything once."""

from collections import Counter

import pytest

from bench.stats import busiest_window
from tests.e2e import ledger
from tests.e2e.conftest import StartSystem
from tests.e2e.test_dispatch import create_mailing, import_clients, phone, wait_all_final

pytestmark = pytest.mark.timeout(240)


def test_four_senders_share_one_limit_exactly(start_system: StartSystem) -> None:
    limit = 300
    system = start_system(
        senders=4,
        env={"HERALD_PROBE_RATE_LIMIT": str(limit)},
        stub_args=["--latency-ms", "20"],
    )
    clients = 3000
    import_clients(system, [(phone(n), "900", "a", "Europe/Moscow") for n in range(clients)])
    mailing = create_mailing(system)

    wait_all_final(system, mailing["id"], clients, timeout=120)

    moments = [r["received_at"] for r in system.stub_received()]
    assert len(moments) == clients
    assert busiest_window(moments) <= limit * 1.05
    span = max(moments) - min(moments)
    assert clients / span >= limit * 0.9, f"{clients} requests in {span:.1f} s"
    assert ledger.statuses(system.database_url, mailing["id"]) == {"sent": clients}


def test_429s_lower_the_rate_and_nothing_is_lost_or_sent_twice(start_system: StartSystem) -> None:
    system = start_system(
        senders=2,
        env={"HERALD_PROBE_RATE_LIMIT": "400"},
        # The API's own limit is lower than herald's: it answers 429 above 150/s.
        stub_args=["--latency-ms", "10", "--rate-limit", "150"],
    )
    clients = 1500
    import_clients(system, [(phone(n), "900", "a", "Europe/Moscow") for n in range(clients)])
    mailing = create_mailing(system)

    wait_all_final(system, mailing["id"], clients, timeout=200)

    received = system.stub_received()
    outcomes = Counter(r["outcome"] for r in received)
    ok = Counter(r["id"] for r in received if r["outcome"] == "ok")
    assert len(ok) == clients
    assert max(ok.values()) == 1
    assert ledger.statuses(system.database_url, mailing["id"]) == {"sent": clients}
    # Without the decrease the senders would keep asking at 400/s: about 250 429s a second.
    assert outcomes["rate_limited"] < clients, outcomes
    assert "rate_limit.lowered" in system.logs("sender-1") + system.logs("sender-2")
