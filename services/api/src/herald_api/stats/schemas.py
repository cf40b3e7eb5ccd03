"""Response bodies of the statistics endpoints."""

from datetime import datetime

from pydantic import BaseModel, Field

from herald_common.domain import MailingStatus, MessageStatus

COUNTS_EXAMPLE = {
    "scheduled": 120,
    "queued": 30,
    "retrying": 2,
    "sent": 800,
    "failed": 5,
    "expired": 0,
    "cancelled": 3,
}


class StatusCounts(BaseModel):
    """Messages in each status. Zero until the scheduler has materialised the mailing."""

    scheduled: int = Field(description="Waiting for their due time.", examples=[120])
    queued: int = Field(description="Handed to a sender.", examples=[30])
    retrying: int = Field(description="Deferred after a transient failure.", examples=[2])
    sent: int = Field(description="Accepted by the external API.", examples=[800])
    failed: int = Field(description="Rejected for good, or out of retries.", examples=[5])
    expired: int = Field(description="Unsent when the mailing ended.", examples=[0])
    cancelled: int = Field(
        description="Unsent when the mailing or client was deleted.", examples=[3]
    )

    def message_count(self) -> int:
        return sum(getattr(self, status.value) for status in MessageStatus)


class StatusTotals(StatusCounts):
    total: int = Field(description="Messages in every status together.", examples=[960])


class MailingCounts(BaseModel):
    mailing_id: int = Field(description="The mailing's id.", examples=[7])
    text: str = Field(description="The mailing's text.", examples=["Spring sale: -20% today"])
    status: MailingStatus = Field(description="The mailing's derived status.", examples=["running"])
    counts: StatusCounts = Field(description="Its messages by status.", examples=[COUNTS_EXAMPLE])
    total: int = Field(description="All its messages.", examples=[960])


class StatsPage(BaseModel):
    items: list[MailingCounts] = Field(
        description="Mailings in ascending id order; deleted ones are not listed.",
        examples=[
            [
                {
                    "mailing_id": 7,
                    "text": "Spring sale: -20% today",
                    "status": "running",
                    "counts": COUNTS_EXAMPLE,
                    "total": 960,
                }
            ]
        ],
    )
    totals: StatusTotals = Field(
        description=(
            "Message counts over every mailing, not just this page, deleted mailings"
            " included: their messages stay in the ledger, as history."
        ),
        examples=[{**COUNTS_EXAMPLE, "total": 960}],
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=["AAAAAAAAAAc"],
    )


class ErrorClassCount(BaseModel):
    error_class: str = Field(
        description="Class of failure recorded on messages.", examples=["http_5xx"]
    )
    count: int = Field(description="Messages whose last failure is of this class.", examples=[4])


class MailingStats(BaseModel):
    mailing_id: int = Field(description="The mailing's id.", examples=[7])
    status: MailingStatus = Field(
        description="The mailing's derived status.", examples=["finished"]
    )
    counts: StatusCounts = Field(description="Its messages by status.", examples=[COUNTS_EXAMPLE])
    total: int = Field(description="All its messages.", examples=[960])
    attempts: int = Field(description="Requests made to the external API for it.", examples=[1010])
    first_sent_at: datetime | None = Field(
        description="When its first message was accepted.", examples=["2030-03-01T06:00:02Z"]
    )
    last_sent_at: datetime | None = Field(
        description="When its latest message was accepted.", examples=["2030-03-01T07:12:40Z"]
    )
    errors: list[ErrorClassCount] = Field(
        description="Messages with a recorded failure, by class, most frequent first.",
        examples=[[{"error_class": "http_5xx", "count": 4}]],
    )
