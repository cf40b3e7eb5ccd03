"""The columnar log of received requests: records, counters and duplicate successes."""

import tracemalloc

from herald_probe_stub.received import OUTCOME_NAMES, Outcome, ReceivedRequests


def test_a_request_reads_back_as_it_was_added_and_answered() -> None:
    received = ReceivedRequests()

    index = received.add(7, 79001234567, "Hello", 1000.5, Outcome.OK, 200)
    assert received.record(index)["answered_at"] is None
    received.answer(index, 1000.75, delivered=True)

    assert received.record(index) == {
        "id": 7,
        "phone": 79001234567,
        "text": "Hello",
        "received_at": 1000.5,
        "answered_at": 1000.75,
        "outcome": "ok",
        "status": 200,
    }


def test_absent_fields_and_undelivered_answers_read_back_as_null() -> None:
    received = ReceivedRequests()

    index = received.add(None, None, None, 1.0, Outcome.HANG, 200)
    received.answer(index, 2.0, delivered=False)

    record = received.record(index)
    assert (record["id"], record["phone"], record["text"], record["status"]) == (None,) * 4
    assert record["outcome"] == "hang"


def test_stats_count_outcomes_and_ids_that_succeeded_more_than_once() -> None:
    received = ReceivedRequests()
    for msg_id, outcome in [
        (1, Outcome.OK),
        (1, Outcome.OK),
        (1, Outcome.OK),
        (2, Outcome.OK),
        (3, Outcome.ERROR),
        (3, Outcome.OK),
        (4, Outcome.HANG),
    ]:
        received.add(msg_id, 79001234567, "t", float(msg_id), outcome, 200)

    stats = received.stats()

    assert stats["requests"] == 7
    assert stats["by_outcome"] == dict.fromkeys(OUTCOME_NAMES, 0) | {"ok": 5, "error": 1, "hang": 1}
    assert stats["distinct_ok_ids"] == 3
    assert stats["duplicate_ok_ids"] == 1
    assert (stats["first_request_at"], stats["last_request_at"]) == (1.0, 4.0)


def test_an_empty_log_has_no_first_or_last_request() -> None:
    stats = ReceivedRequests().stats()

    assert stats["requests"] == 0
    assert stats["first_request_at"] is None
    assert stats["last_request_at"] is None


def test_one_text_sent_to_many_is_stored_once() -> None:
    received = ReceivedRequests()
    text = "".join(["campaign ", "text"])  # built at run time, so not an interned literal
    for msg_id in range(1_000):
        received.add(msg_id, 79001234567, "".join(["campaign ", "text"]), 0.0, Outcome.OK, 200)

    assert received.record(999)["text"] == text
    assert received.record(0)["text"] is received.record(999)["text"]


def test_requests_take_little_memory_each() -> None:
    # The benchmark keeps a million records: they must fit in a few hundred MB.
    tracemalloc.start()
    try:
        received = ReceivedRequests()
        for msg_id in range(20_000):
            received.add(msg_id, 79001234567, "text", 1.0, Outcome.OK, 200)
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(received) == 20_000
    assert size / 20_000 < 250  # a dict per record takes several hundred
