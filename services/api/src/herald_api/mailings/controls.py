"""The operator controls' rules: what pause, resume and cancel do from each mailing status.

A pure decision, tested over every (control, status) pair; the service locks the mailing,
asks, and applies. A control that finds its result already in place changes nothing and
answers the mailing as it is, so that a retried request gets the same answer.
"""

from dataclasses import dataclass
from enum import Enum, StrEnum

from herald_common.domain import MailingStatus


class Control(StrEnum):
    pause = "pause"
    resume = "resume"
    cancel = "cancel"


class Effect(Enum):
    apply = "apply"  # change the mailing, bump its revision, write its event
    already = "already"  # the result already holds: change nothing, emit nothing
    refuse = "refuse"  # a wrong transition: 409


@dataclass(frozen=True)
class Rule:
    effect: Effect
    # Why a refused control is refused; {id} and {status} are filled in.
    reason: str = ""

    def conflict_message(self, mailing_id: int, status: MailingStatus) -> str:
        return self.reason.format(id=mailing_id, status=status.value)


_APPLY = Rule(Effect.apply)
_ALREADY = Rule(Effect.already)

RULES: dict[tuple[Control, MailingStatus], Rule] = {
    (Control.pause, MailingStatus.scheduled): _APPLY,
    (Control.pause, MailingStatus.running): _APPLY,
    (Control.pause, MailingStatus.paused): _ALREADY,
    (Control.pause, MailingStatus.finished): Rule(
        Effect.refuse, "mailing {id} has finished: there is nothing left to pause"
    ),
    (Control.pause, MailingStatus.cancelled): Rule(
        Effect.refuse, "mailing {id} was cancelled: it cannot be paused"
    ),
    # Resuming what is not paused is refused, as the issue asks, rather than answered as
    # done: a retried resume that finds the mailing running learns so from the message.
    (Control.resume, MailingStatus.scheduled): Rule(
        Effect.refuse, "mailing {id} is not paused: it is {status}"
    ),
    (Control.resume, MailingStatus.running): Rule(
        Effect.refuse, "mailing {id} is not paused: it is {status}"
    ),
    (Control.resume, MailingStatus.paused): _APPLY,
    (Control.resume, MailingStatus.finished): Rule(
        Effect.refuse, "mailing {id} has finished: there is nothing left to resume"
    ),
    (Control.resume, MailingStatus.cancelled): Rule(
        Effect.refuse, "mailing {id} was cancelled: it cannot be resumed"
    ),
    (Control.cancel, MailingStatus.scheduled): _APPLY,
    (Control.cancel, MailingStatus.running): _APPLY,
    (Control.cancel, MailingStatus.paused): _APPLY,
    (Control.cancel, MailingStatus.finished): Rule(
        Effect.refuse, "mailing {id} has finished: there is nothing left to cancel"
    ),
    (Control.cancel, MailingStatus.cancelled): _ALREADY,
}


def decide(control: Control, status: MailingStatus) -> Rule:
    return RULES[(control, status)]


def offered(status: MailingStatus) -> list[Control]:
    """The controls that would change a mailing in this status: the admin UI's buttons."""
    return [control for control in Control if decide(control, status).effect is Effect.apply]
