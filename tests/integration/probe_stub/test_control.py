"""The control API under /_stub: stats, the request log, config and reset."""

import time

import pytest

from herald_probe_stub.received import OUTCOME_NAMES, Outcome
from tests.integration.probe_stub.conftest import RunningStub


async def test_healthz_answers_ok(stub: RunningStub) -> None:
    response = await stub.client.get(f"{stub.url}/healthz")

    assert response.status_code == 200


async def test_stats_count_requests_by_outcome(stub: RunningStub) -> None:
    started = time.time()
    await stub.send(1)
    await stub.send(2, headers={})
    await stub.send(3, json={"id": 3})

    stats = await stub.stats()

    assert stats["requests"] == 3
    assert set(stats["by_outcome"]) == set(OUTCOME_NAMES)
    assert (stats["by_outcome"]["ok"], stats["by_outcome"]["unauthorized"]) == (1, 1)
    assert stats["by_outcome"]["bad_request"] == 1
    assert started <= stats["first_request_at"] <= stats["last_request_at"] <= time.time()
    assert stats["cpu_seconds"] > 0
    assert stats["uptime_seconds"] > 0


async def test_ids_that_succeed_twice_are_counted_as_duplicates(stub: RunningStub) -> None:
    for msg_id in [1, 2, 2, 3, 3, 3]:
        assert (await stub.send(msg_id)).status_code == 200
    await stub.configure(error_rate=1.0)
    await stub.send(4)
    await stub.send(4)

    stats = await stub.stats()

    assert stats["distinct_ok_ids"] == 3
    assert stats["duplicate_ok_ids"] == 2


async def test_received_lists_every_request_in_arrival_order(stub: RunningStub) -> None:
    for msg_id in range(5):
        await stub.send(msg_id, json={"id": msg_id, "phone": 79001234560 + msg_id, "text": "t"})

    records = await stub.received()

    assert [record["id"] for record in records] == list(range(5))
    assert [record["phone"] for record in records] == [79001234560 + i for i in range(5)]
    assert set(records[0]) == {
        "id",
        "phone",
        "text",
        "received_at",
        "answered_at",
        "outcome",
        "status",
    }


async def test_received_streams_a_log_larger_than_one_chunk(stub: RunningStub) -> None:
    for msg_id in range(12_001):
        stub.app.received.add(msg_id, 79001234567, "t", 1.0, Outcome.OK, 200)

    records = await stub.received()

    assert len(records) == 12_001
    assert records[-1]["id"] == 12_000


async def test_reset_clears_records_and_counters(stub: RunningStub) -> None:
    await stub.send(1)
    await stub.send(1)

    response = await stub.client.post(f"{stub.url}/_stub/reset")

    assert response.status_code == 200
    stats = await stub.stats()
    assert (stats["requests"], stats["distinct_ok_ids"], stats["duplicate_ok_ids"]) == (0, 0, 0)
    assert stats["by_outcome"]["ok"] == 0
    assert await stub.received() == []


async def test_get_config_shows_the_current_config(stub: RunningStub) -> None:
    response = await stub.client.get(f"{stub.url}/_stub/config")

    assert response.json() == {
        "token": "dev-probe-token",
        "latency_ms": 0.0,
        "jitter_ms": 0.0,
        "load_latency_ms": 0.0,
        "error_rate": 0.0,
        "malformed_rate": 0.0,
        "hang_rate": 0.0,
        "hang_seconds": 30.0,
        "reset_rate": 0.0,
        "rate_limit": 0.0,
        "outages": [],
        "outage_mode": "503",
    }


async def test_put_config_changes_only_what_it_names(stub: RunningStub) -> None:
    config = await stub.configure(error_rate=0.5, outages=[[10, 5]])

    assert config["error_rate"] == 0.5
    assert config["outages"][0][0] == pytest.approx(10, abs=0.5)
    assert config["outages"][0][1] == 5
    assert config["latency_ms"] == 0.0
    assert (await stub.client.get(f"{stub.url}/_stub/config")).json()["error_rate"] == 0.5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"error_rate": 2}, "error_rate"),
        ({"outages": [[1]]}, "outages"),
        ({"outage_mode": "x"}, "outage_mode"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_put_config_rejects_a_bad_value_and_changes_nothing(
    stub: RunningStub, body: dict[str, object], field: str
) -> None:
    response = await stub.client.put(f"{stub.url}/_stub/config", json={"latency_ms": 9, **body})

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert (await stub.client.get(f"{stub.url}/_stub/config")).json()["latency_ms"] == 0.0


async def test_put_config_rejects_a_body_that_is_not_an_object(stub: RunningStub) -> None:
    response = await stub.client.put(f"{stub.url}/_stub/config", content=b"[]")

    assert response.status_code == 400


async def test_a_new_token_replaces_the_old_one(stub: RunningStub) -> None:
    await stub.configure(token="rotated")

    assert (await stub.send(1)).status_code == 401
    assert (await stub.send(1, headers={"Authorization": "Bearer rotated"})).status_code == 200


async def test_a_null_token_turns_authentication_off(stub: RunningStub) -> None:
    await stub.configure(token=None)

    assert (await stub.send(1, headers={})).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/_stub/stats"), ("DELETE", "/_stub/config"), ("GET", "/_stub/reset")],
)
async def test_a_wrong_method_on_a_control_route_is_not_allowed(
    stub: RunningStub, method: str, path: str
) -> None:
    response = await stub.client.request(method, stub.url + path)

    assert response.status_code == 405
    assert response.headers["allow"]
