"""POST …/send/{msgId}: authentication, validation, the OK path and every injected fault."""

import asyncio
import time

import httpx
import orjson
import pytest

from herald_probe_stub.faults import MALFORMED_BODIES
from tests.integration.probe_stub.conftest import AUTH, RunningStub, message


async def test_a_valid_request_gets_ok_and_is_recorded(stub: RunningStub) -> None:
    before = time.time()

    response = await stub.send(42, json=message(42, text="Привет"))

    assert response.status_code == 200
    assert response.json() == {"code": 0, "message": "OK"}
    [record] = await stub.received()
    assert record["id"] == 42
    assert record["phone"] == 79001234567
    assert record["text"] == "Привет"
    assert (record["outcome"], record["status"]) == ("ok", 200)
    assert before <= record["received_at"] <= record["answered_at"] <= time.time()


@pytest.mark.parametrize("path", ["/send/5", "/v1/send/5", "/api/v2/send/5"])
async def test_any_prefix_ending_in_send_and_an_id_is_the_send_endpoint(
    stub: RunningStub, path: str
) -> None:
    response = await stub.client.post(stub.url + path, json=message(5), headers=AUTH)

    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/v1/send/", "/v1/send/x1", "/v1/send/5/extra", "/v1/mail/5"])
async def test_other_routes_are_not_found(stub: RunningStub, path: str) -> None:
    response = await stub.client.post(stub.url + path, json=message(5), headers=AUTH)

    assert response.status_code == 404
    assert (await stub.stats())["requests"] == 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "dev-probe-token"}],
)
async def test_a_missing_or_wrong_token_is_unauthorized(
    stub: RunningStub, headers: dict[str, str]
) -> None:
    response = await stub.send(1, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    [record] = await stub.received()
    assert (record["id"], record["outcome"], record["status"]) == (1, "unauthorized", 401)


async def test_the_bearer_scheme_is_case_insensitive(stub: RunningStub) -> None:
    response = await stub.send(1, headers={"Authorization": "bearer dev-probe-token"})

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": 79001234567, "text": "t"}, "id"),
        ({"id": "7", "phone": 79001234567, "text": "t"}, "id"),
        ({"id": 8, "phone": 79001234567, "text": "t"}, "id"),
        ({"id": 7, "text": "t"}, "phone"),
        ({"id": 7, "phone": "79001234567", "text": "t"}, "phone"),
        ({"id": 7, "phone": 7900123456, "text": "t"}, "phone"),
        ({"id": 7, "phone": 89001234567, "text": "t"}, "phone"),
        ({"id": 7, "phone": 79001234567}, "text"),
        ({"id": 7, "phone": 79001234567, "text": None}, "text"),
    ],
)
async def test_a_bad_body_is_a_bad_request_naming_the_field(
    stub: RunningStub, body: dict[str, object], field: str
) -> None:
    response = await stub.send(7, json=body)

    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{field}: ")
    [record] = await stub.received()
    assert record["outcome"] == "bad_request"


async def test_a_body_that_is_not_json_is_a_bad_request(stub: RunningStub) -> None:
    response = await stub.send(7, content=b"id=7", json=None)

    assert response.status_code == 400
    assert response.json()["message"].startswith("body: ")


async def test_error_rate_answers_a_server_error(stub: RunningStub) -> None:
    await stub.configure(error_rate=1.0)

    statuses = {(await stub.send(msg_id)).status_code for msg_id in range(30)}

    assert statuses <= {500, 502, 503}
    assert len(statuses) > 1
    assert (await stub.stats())["by_outcome"]["error"] == 30


async def test_malformed_rate_answers_200_with_a_body_off_the_schema(stub: RunningStub) -> None:
    await stub.configure(malformed_rate=1.0)

    responses = [await stub.send(msg_id) for msg_id in range(20)]

    assert {response.status_code for response in responses} == {200}
    assert {response.content for response in responses} <= set(MALFORMED_BODIES)
    for response in responses:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            continue
        assert not (isinstance(body, dict) and body.get("code") == 0)
    assert (await stub.stats())["by_outcome"]["malformed"] == 20


async def test_reset_rate_drops_the_connection(stub: RunningStub) -> None:
    await stub.configure(reset_rate=1.0)

    for msg_id in range(10):
        with pytest.raises(httpx.TransportError) as caught:
            await stub.send(msg_id)
        assert not isinstance(caught.value, httpx.TimeoutException)

    records = await stub.received()
    assert {(record["outcome"], record["status"]) for record in records} == {("reset", None)}
    assert len(records) == 10


async def test_hang_rate_answers_ok_only_after_hang_seconds(stub: RunningStub) -> None:
    await stub.configure(hang_rate=1.0, hang_seconds=0.3)
    started = time.monotonic()

    response = await stub.send(1)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    [record] = await stub.received()
    assert (record["outcome"], record["status"]) == ("hang", 200)


async def test_a_hang_ends_when_the_client_gives_up(stub: RunningStub) -> None:
    await stub.configure(hang_rate=1.0, hang_seconds=30)

    with pytest.raises(httpx.ReadTimeout):
        await stub.send(1, timeout=0.2)

    for _ in range(100):
        [record] = await stub.received()
        if record["answered_at"] is not None:
            break
        await asyncio.sleep(0.02)
    assert record["outcome"] == "hang"
    assert record["status"] is None  # nothing was delivered
    assert record["answered_at"] - record["received_at"] < 30


async def test_latency_delays_the_answer(stub: RunningStub) -> None:
    await stub.configure(latency_ms=200)
    started = time.monotonic()

    response = await stub.send(1)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


async def test_latency_also_delays_bad_requests_and_errors(stub: RunningStub) -> None:
    await stub.configure(latency_ms=150)

    started = time.monotonic()
    assert (await stub.send(1, json={"id": 1})).status_code == 400
    assert time.monotonic() - started >= 0.15

    await stub.configure(error_rate=1.0)
    started = time.monotonic()
    assert (await stub.send(1)).status_code >= 500
    assert time.monotonic() - started >= 0.15


async def test_unauthorized_and_rate_limited_answers_skip_the_latency(stub: RunningStub) -> None:
    await stub.configure(rate_limit=1)
    assert (await stub.send(1)).status_code == 200  # takes the bucket's one token
    await stub.configure(latency_ms=5_000)  # the same rate keeps the emptied bucket
    started = time.monotonic()

    assert (await stub.send(2, headers={})).status_code == 401
    assert (await stub.send(3)).status_code == 429

    # Both answered at once, not after the 5 s latency.
    assert time.monotonic() - started < 4


async def test_over_the_rate_limit_answers_429_with_retry_after(stub: RunningStub) -> None:
    await stub.configure(rate_limit=1)

    responses = [await stub.send(msg_id) for msg_id in range(4)]

    assert responses[0].status_code == 200
    limited = [response for response in responses if response.status_code == 429]
    assert len(limited) >= 2
    assert all(response.headers["retry-after"] == "1" for response in limited)
    assert (await stub.stats())["by_outcome"]["rate_limited"] == len(limited)


async def test_inside_an_outage_every_request_gets_503(stub: RunningStub) -> None:
    await stub.configure(outages=[[-1, 60]], latency_ms=5_000)
    started = time.monotonic()

    response = await stub.send(1)

    assert response.status_code == 503
    assert time.monotonic() - started < 4  # at once, not after the latency
    [record] = await stub.received()
    assert (record["outcome"], record["status"]) == ("outage", 503)


async def test_an_outage_in_the_future_or_the_past_does_not_apply(stub: RunningStub) -> None:
    await stub.configure(outages=[[30, 60], [-60, 30]])

    assert (await stub.send(1)).status_code == 200


async def test_an_outage_ends_when_its_window_closes(stub: RunningStub) -> None:
    await stub.configure(outages=[[0, 0.3]])

    assert (await stub.send(1)).status_code == 503
    await asyncio.sleep(0.5)
    assert (await stub.send(2)).status_code == 200
    assert (await stub.configure())["outages"] == []


async def test_an_outage_in_reset_mode_drops_the_connection(stub: RunningStub) -> None:
    await stub.configure(outages=[[-1, 60]], outage_mode="reset")

    with pytest.raises(httpx.TransportError):
        await stub.send(1)

    [record] = await stub.received()
    assert (record["outcome"], record["status"]) == ("outage", None)


async def test_authentication_comes_before_the_outage(stub: RunningStub) -> None:
    await stub.configure(outages=[[-1, 60]])

    assert (await stub.send(1, headers={})).status_code == 401
