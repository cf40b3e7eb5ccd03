"""Mailing use cases: each change bumps the revision and writes a ``mailing.*`` event; the
audience preview of would-be terms changes nothing.

Pause, resume and cancel follow ``herald_api.mailings.controls``; a delete hides the
mailing for good (404) and stops what it left unsent, as a cancel does.
"""

import zoneinfo
from collections.abc import Iterable
from datetime import datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from herald_api import correlation
from herald_api.errors import Conflict, NotFound, ValidationFailed
from herald_api.mailings import controls, repository
from herald_api.mailings.controls import Control, Effect
from herald_api.mailings.repository import MailingWithStatus
from herald_api.mailings.schemas import (
    AudiencePreview,
    AudienceZone,
    MailingCreate,
    MailingFilter,
    MailingUpdate,
    SendWindow,
)
from herald_api.outbox import writer
from herald_common import send_window
from herald_common.contracts import EventType
from herald_common.db.models import Message
from herald_common.domain import MailingStatus, MessageStatus


def not_found(mailing_id: int) -> NotFound:
    return NotFound(f"no mailing with id {mailing_id}")


def _filter_columns(mailing_filter: MailingFilter | None) -> dict[str, Any]:
    return {
        "filter_operator_codes": mailing_filter.operator_codes if mailing_filter else None,
        "filter_tags": mailing_filter.tags if mailing_filter else None,
    }


def _window_columns(window: SendWindow | None) -> dict[str, Any]:
    return {
        "send_window_start": time.fromisoformat(window.start) if window else None,
        "send_window_end": time.fromisoformat(window.end) if window else None,
    }


async def create(session: AsyncSession, new: MailingCreate) -> MailingWithStatus:
    mailing, status = await repository.add(
        session,
        {
            "text": new.text,
            "start_at": new.start_at,
            "end_at": new.end_at,
            **_filter_columns(new.filter),
            **_window_columns(new.send_window),
            "max_rate": new.max_rate,
            "correlation_id": correlation.current(),
        },
    )
    await writer.record(
        session,
        [writer.mailing_changed(EventType.mailing_created, mailing.id, mailing.revision)],
    )
    return mailing, status


async def get(session: AsyncSession, mailing_id: int) -> MailingWithStatus:
    found = await repository.get(session, mailing_id)
    if found is None:
        raise not_found(mailing_id)
    return found


async def update(
    session: AsyncSession, mailing_id: int, changes: MailingUpdate
) -> MailingWithStatus:
    found = await repository.lock(session, mailing_id)
    if found is None:
        raise not_found(mailing_id)
    current, _ = found
    if current.cancelled_at is not None:
        raise Conflict(f"mailing {mailing_id} was cancelled and cannot change")
    sent = changes.model_fields_set
    if not sent:
        return await get(session, mailing_id)
    start_at = changes.start_at if changes.start_at is not None else current.start_at
    end_at = changes.end_at if changes.end_at is not None else current.end_at
    if start_at >= end_at:
        if "end_at" in sent:
            raise ValidationFailed.on("end_at", "must be after start_at")
        raise ValidationFailed.on("start_at", "must be before end_at")
    values: dict[str, Any] = {"correlation_id": correlation.current()}
    if changes.text is not None:
        values["text"] = changes.text
    values.update(start_at=start_at, end_at=end_at)
    if "filter" in sent:
        values.update(_filter_columns(changes.filter))
    if "send_window" in sent:
        values.update(_window_columns(changes.send_window))
    if "max_rate" in sent:
        values["max_rate"] = changes.max_rate
    mailing, status = await repository.change(session, mailing_id, values)
    await writer.record(
        session,
        [writer.mailing_changed(EventType.mailing_updated, mailing.id, mailing.revision)],
    )
    return mailing, status


_CONTROL_EVENTS: dict[Control, writer.MailingEventType] = {
    Control.pause: EventType.mailing_paused,
    Control.resume: EventType.mailing_resumed,
    Control.cancel: EventType.mailing_cancelled,
}


async def pause(session: AsyncSession, mailing_id: int) -> MailingWithStatus:
    """Stop sending until a resume: the dispatcher claims none of its messages, and senders
    hand back those they hold. Nothing is expired by the pause itself."""
    return await _control(session, mailing_id, Control.pause)


async def resume(session: AsyncSession, mailing_id: int) -> MailingWithStatus:
    """Send again, under the terms and windows as they are now (the scheduler recomputes
    the due times of what waits)."""
    return await _control(session, mailing_id, Control.resume)


async def cancel(session: AsyncSession, mailing_id: int) -> MailingWithStatus:
    """Stop for good: the scheduler cancels every unsent message. The mailing stays
    readable, with its statistics."""
    return await _control(session, mailing_id, Control.cancel)


async def _control(session: AsyncSession, mailing_id: int, control: Control) -> MailingWithStatus:
    found = await repository.lock(session, mailing_id)
    if found is None:
        raise not_found(mailing_id)
    _, status = found
    rule = controls.decide(control, status)
    if rule.effect is Effect.refuse:
        raise Conflict(rule.conflict_message(mailing_id, status))
    if rule.effect is Effect.already:
        return found
    mailing, new_status = await repository.apply_control(
        session, mailing_id, control, correlation.current()
    )
    await writer.record(
        session,
        [writer.mailing_changed(_CONTROL_EVENTS[control], mailing.id, mailing.revision)],
    )
    return mailing, new_status


async def delete(session: AsyncSession, mailing_id: int) -> None:
    """Delete for good: the mailing answers 404 from now on, and what it left unsent is
    cancelled. Its ledger rows stay, and still count in the global totals."""
    revision = await repository.delete(session, mailing_id, correlation.current())
    if revision is None:
        raise not_found(mailing_id)
    await writer.record(
        session, [writer.mailing_changed(EventType.mailing_deleted, mailing_id, revision)]
    )


async def list_page(
    session: AsyncSession,
    *,
    after_id: int,
    limit: int,
    status: MailingStatus | None,
    text: str | None = None,
    newest_first: bool = False,
) -> list[MailingWithStatus]:
    """A page by id; ``text`` keeps the mailings whose text contains it (any letter case)."""
    return await repository.page(
        session,
        after_id=after_id,
        limit=limit,
        status=status,
        text=text,
        newest_first=newest_first,
    )


def first_send_at(
    start_at: datetime,
    end_at: datetime,
    timezone: str,
    window: send_window.SendWindow | None,
    now: datetime,
) -> datetime | None:
    """When a client in ``timezone`` would first be due: the scheduler's rule
    (``herald_scheduler.reconciler.zone_due``), which a test holds this to.

    A frame that has started counts from now; an unknown zone is never due.
    """
    try:
        tz = send_window.zone(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return send_window.first_due_at(max(start_at, now), end_at, tz, window)


def audience_zones(
    groups: Iterable[tuple[str, int]],
    *,
    start_at: datetime,
    end_at: datetime,
    window: send_window.SendWindow | None,
    now: datetime,
) -> list[AudienceZone]:
    """Each zone's clients and first send, the earliest first and the never-due last."""
    zones = []
    for timezone, clients in groups:
        due = first_send_at(start_at, end_at, timezone, window, now)
        local = None if due is None else due.astimezone(send_window.zone(timezone))
        zones.append(
            AudienceZone(
                timezone=timezone, clients=clients, first_send_at=due, first_send_local=local
            )
        )
    return sorted(
        zones,
        key=lambda zone: (
            zone.first_send_at is None,
            zone.first_send_at or now,
            zone.timezone,
        ),
    )


def _common_window(window: SendWindow | None) -> send_window.SendWindow | None:
    if window is None:
        return None
    return send_window.SendWindow(time.fromisoformat(window.start), time.fromisoformat(window.end))


async def preview(session: AsyncSession, terms: MailingCreate) -> AudiencePreview:
    """The audience a mailing with these terms would have now: one grouped count over the
    matching clients, then one due time per time zone, as the scheduler computes them."""
    now = await repository.database_now(session)
    groups = await repository.audience_by_timezone(
        session,
        operator_codes=terms.filter.operator_codes if terms.filter else None,
        tags=terms.filter.tags if terms.filter else None,
    )
    zones = audience_zones(
        groups,
        start_at=terms.start_at,
        end_at=terms.end_at,
        window=_common_window(terms.send_window),
        now=now,
    )
    matching = sum(zone.clients for zone in zones)
    never = sum(zone.clients for zone in zones if zone.first_send_at is None)
    return AudiencePreview(
        matching=matching,
        reachable=matching - never,
        never=never,
        computed_at=now,
        zones=zones,
    )


async def messages_page(
    session: AsyncSession,
    mailing_id: int,
    *,
    after_id: int,
    limit: int,
    status: MessageStatus | None,
) -> list[Message]:
    if not await repository.exists(session, mailing_id):
        raise not_found(mailing_id)
    messages = await repository.messages_page(
        session, mailing_id, after_id=after_id, limit=limit, status=status
    )
    return list(messages)
