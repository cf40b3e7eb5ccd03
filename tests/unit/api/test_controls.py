"""The operator controls' rules: every (control, status) pair decided, refusals explained."""

import pytest

from herald_api.mailings.controls import RULES, Control, Effect, decide, offered
from herald_common.domain import MailingStatus

APPLIES = {
    Control.pause: {MailingStatus.scheduled, MailingStatus.running},
    Control.resume: {MailingStatus.paused},
    Control.cancel: {MailingStatus.scheduled, MailingStatus.running, MailingStatus.paused},
}
# Asked again once done: the same answer, nothing changed.
ALREADY = {(Control.pause, MailingStatus.paused), (Control.cancel, MailingStatus.cancelled)}


def test_every_control_is_decided_for_every_status() -> None:
    assert set(RULES) == {(control, status) for control in Control for status in MailingStatus}


@pytest.mark.parametrize("control", list(Control))
@pytest.mark.parametrize("status", list(MailingStatus))
def test_each_control_applies_repeats_or_refuses(control: Control, status: MailingStatus) -> None:
    rule = decide(control, status)
    if status in APPLIES[control]:
        assert rule.effect is Effect.apply
    elif (control, status) in ALREADY:
        assert rule.effect is Effect.already
    else:
        assert rule.effect is Effect.refuse
        message = rule.conflict_message(7, status)
        assert message.startswith("mailing 7 ")
        assert "{" not in message


def test_refusals_say_why() -> None:
    assert (
        decide(Control.resume, MailingStatus.running).conflict_message(7, MailingStatus.running)
        == "mailing 7 is not paused: it is running"
    )
    assert (
        decide(Control.pause, MailingStatus.finished).conflict_message(7, MailingStatus.finished)
        == "mailing 7 has finished: there is nothing left to pause"
    )
    assert (
        decide(Control.cancel, MailingStatus.finished).conflict_message(7, MailingStatus.finished)
        == "mailing 7 has finished: there is nothing left to cancel"
    )
    assert (
        decide(Control.resume, MailingStatus.cancelled).conflict_message(7, MailingStatus.cancelled)
        == "mailing 7 was cancelled: it cannot be resumed"
    )


def test_the_admin_offers_exactly_the_controls_that_would_change_the_mailing() -> None:
    assert offered(MailingStatus.running) == [Control.pause, Control.cancel]
    assert offered(MailingStatus.scheduled) == [Control.pause, Control.cancel]
    assert offered(MailingStatus.paused) == [Control.resume, Control.cancel]
    assert offered(MailingStatus.finished) == []
    assert offered(MailingStatus.cancelled) == []
