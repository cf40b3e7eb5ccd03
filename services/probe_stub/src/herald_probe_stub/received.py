"""Every send request the stub received, kept in columns so that a million fit in ~50 MB.

A request is added when it arrives, with its outcome already decided, and gets its
``answered_at`` when the answer leaves (a hang answers much later than it arrives).
"""

from __future__ import annotations

import enum
import math
from array import array
from typing import Any, Final

from herald_probe_stub.send_request import INT64_MIN

# Stands for an id or phone that was absent or not an int64; no valid request has it.
_MISSING: Final = INT64_MIN
_NO_TEXT: Final = 0  # index 0 of the text table stands for a text that was absent
_NO_STATUS: Final = 0  # the connection was dropped without an answer


class Outcome(enum.IntEnum):
    OK = 0
    UNAUTHORIZED = 1
    BAD_REQUEST = 2
    ERROR = 3
    MALFORMED = 4
    HANG = 5
    RESET = 6
    RATE_LIMITED = 7
    OUTAGE = 8


OUTCOME_NAMES: Final = tuple(outcome.name.lower() for outcome in Outcome)


class ReceivedRequests:
    """Columns of ids, phones, texts, times, outcomes and statuses, with running counters."""

    __slots__ = (
        "_answered_at",
        "_by_outcome",
        "_duplicate_ok_ids",
        "_ids",
        "_ok_ids",
        "_outcomes",
        "_phones",
        "_received_at",
        "_statuses",
        "_text_index",
        "_text_table",
        "_texts",
    )

    def __init__(self) -> None:
        self._ids = array("q")
        self._phones = array("q")
        self._texts = array("I")
        self._received_at = array("d")
        self._answered_at = array("d")
        self._outcomes = array("B")
        self._statuses = array("H")
        # A mailing sends one text to many clients: store each distinct text once.
        self._text_table: list[str | None] = [None]
        self._text_index: dict[str, int] = {}
        self._by_outcome = [0] * len(Outcome)
        self._ok_ids: set[int] = set()
        self._duplicate_ok_ids: set[int] = set()

    def __len__(self) -> int:
        return len(self._received_at)

    def add(
        self,
        msg_id: int | None,
        phone: int | None,
        text: str | None,
        received_at: float,
        outcome: Outcome,
        status: int | None,
    ) -> int:
        """Store one request and return its index, for :meth:`answer`."""
        if text is None:
            text_index = _NO_TEXT
        else:
            text_index = self._text_index.get(text, _NO_TEXT)
            if text_index == _NO_TEXT:
                text_index = len(self._text_table)
                self._text_table.append(text)
                self._text_index[text] = text_index
        self._ids.append(_MISSING if msg_id is None else msg_id)
        self._phones.append(_MISSING if phone is None else phone)
        self._texts.append(text_index)
        self._received_at.append(received_at)
        self._answered_at.append(math.nan)
        self._outcomes.append(outcome)
        self._statuses.append(_NO_STATUS if status is None else status)
        self._by_outcome[outcome] += 1
        if outcome == Outcome.OK and msg_id is not None:
            if msg_id in self._ok_ids:
                self._duplicate_ok_ids.add(msg_id)
            else:
                self._ok_ids.add(msg_id)
        return len(self._received_at) - 1

    def answer(self, index: int, answered_at: float, *, delivered: bool) -> None:
        """Note when the request was done with; an answer not delivered keeps no status."""
        self._answered_at[index] = answered_at
        if not delivered:
            self._statuses[index] = _NO_STATUS

    def record(self, index: int) -> dict[str, Any]:
        """One request as ``GET /_stub/received`` shows it."""
        msg_id = self._ids[index]
        phone = self._phones[index]
        answered_at = self._answered_at[index]
        status = self._statuses[index]
        return {
            "id": None if msg_id == _MISSING else msg_id,
            "phone": None if phone == _MISSING else phone,
            "text": self._text_table[self._texts[index]],
            "received_at": self._received_at[index],
            "answered_at": None if math.isnan(answered_at) else answered_at,
            "outcome": OUTCOME_NAMES[self._outcomes[index]],
            "status": None if status == _NO_STATUS else status,
        }

    def stats(self) -> dict[str, Any]:
        count = len(self._received_at)
        return {
            "requests": count,
            "by_outcome": dict(zip(OUTCOME_NAMES, self._by_outcome, strict=True)),
            "distinct_ok_ids": len(self._ok_ids),
            "duplicate_ok_ids": len(self._duplicate_ok_ids),
            "first_request_at": self._received_at[0] if count else None,
            "last_request_at": self._received_at[-1] if count else None,
        }
