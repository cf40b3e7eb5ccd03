"""HERALD_PROBE_RATE_LIMIT across four sender processes, against the stub: the external
API sees at most the limit in every second, and close to it while there is a backlog;
when the API answers 429, the senders slow down and still deliver everything once. A
mailing's own max_rate holds the same way, alone and under the global limit."""

import time
from collections import Counter

import pytest

from bench.stats import busiest_window
from tests.e2e import ledger
from tests.e2e.conftest import StartSystem
from tests.e2e.system import System
from tests.e2e.test_dispatch import (
    create_mailing,
    import_clients,
    phone,
    wait_all_final,
    wait_for,
)

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


def _moments(system: System, text: str) -> list[float]:
    return sorted(r["received_at"] for r in system.stub_received() if r["text"] == text)


def test_a_mailings_max_rate_holds_across_senders_and_follows_a_patch(
    start_system: StartSystem,
) -> None:
    system = start_system(senders=2, stub_args=["--latency-ms", "20"])
    clients = 900
    import_clients(system, [(phone(n), "900", "a", "Europe/Moscow") for n in range(clients)])
    text = "Throttled to 40/s"
    mailing = create_mailing(system, text=text, max_rate=40)

    wait_for(lambda: len(_moments(system, text)) >= 200, 30, "200 requests at 40/s")
    with system.api as api:
        response = api.patch(f"/mailings/{mailing['id']}", json={"max_rate": 150})
    assert response.status_code == 200, response.text
    patched_at = time.time()
    wait_all_final(system, mailing["id"], clients, timeout=120)

    moments = _moments(system, text)
    assert len(moments) == clients
    before = [m for m in moments if m < patched_at]
    assert busiest_window(before) <= 40 * 1.05
    assert len(before) / (max(before) - min(before)) >= 40 * 0.9
    # A sender reads the change within its watch's interval; after that, the new rate.
    after = [m for m in moments if m > patched_at + 2]
    assert busiest_window(after) <= 150 * 1.05
    assert len(after) / (max(after) - min(after)) >= 150 * 0.9, f"{len(after)} after the patch"
    assert ledger.statuses(system.database_url, mailing["id"]) == {"sent": clients}


def test_a_throttled_mailing_and_the_global_limit_both_hold(start_system: StartSystem) -> None:
    limit, max_rate = 200, 50
    system = start_system(
        senders=2,
        env={"HERALD_PROBE_RATE_LIMIT": str(limit)},
        stub_args=["--latency-ms", "20"],
    )
    slow, fast = 500, 1500
    import_clients(
        system,
        [(phone(n), "900", "slow", "Europe/Moscow") for n in range(slow)]
        + [(phone(slow + n), "900", "fast", "Europe/Moscow") for n in range(fast)],
    )
    throttled = create_mailing(
        system, text="Throttled", max_rate=max_rate, filter={"tags": ["slow"]}
    )
    unthrottled = create_mailing(system, text="Unthrottled", filter={"tags": ["fast"]})

    wait_all_final(system, throttled["id"], slow, timeout=120)
    wait_all_final(system, unthrottled["id"], fast, timeout=120)

    received = system.stub_received()
    assert busiest_window([r["received_at"] for r in received]) <= limit * 1.05
    moments = _moments(system, "Throttled")
    assert len(moments) == slow
    assert busiest_window(moments) <= max_rate * 1.05
    # The throttled mailing goes first for the global limit, so it keeps most of its rate
    # while the other mailing takes the rest.
    other = _moments(system, "Unthrottled")
    overlap = [m for m in moments if m <= max(other)]
    rate = len(overlap) / (max(overlap) - min(moments))
    assert rate >= max_rate * 0.9, f"{rate:.1f}/s while the other mailing ran"
    assert ledger.statuses(system.database_url, throttled["id"]) == {"sent": slow}
    assert ledger.statuses(system.database_url, unthrottled["id"]) == {"sent": fast}
