"""/api/v1/stats and /api/v1/mailings/{id}/stats: message counts by status."""

from fastapi import APIRouter

from herald_api.auth.route import AuthenticatedRoute
from herald_api.deps import SessionDep
from herald_api.errors import error_responses
from herald_api.pagination import Cursor, Limit, decode_cursor
from herald_api.params import API_PREFIX, MailingId
from herald_api.stats import service
from herald_api.stats.schemas import MailingStats, StatsPage

router = APIRouter(prefix=API_PREFIX, tags=["stats"], route_class=AuthenticatedRoute)


@router.get(
    "/stats",
    summary="Message counts of every mailing",
    response_description="A page of mailings with their counts, and the totals.",
    description=(
        "Each mailing (a page at a time) with its messages counted by status, and the totals"
        " over all mailings. A deleted mailing is not listed, but its messages still count"
        " in the totals: the ledger keeps them as history. Counts are kept by the scheduler"
        " in the same transaction as the ledger, so reading them costs the same whatever"
        " the mailing's size."
    ),
    responses=error_responses(401, 422),
)
async def get_stats(session: SessionDep, limit: Limit = 50, cursor: Cursor = None) -> StatsPage:
    return await service.overview(session, after_id=decode_cursor(cursor), limit=limit)


@router.get(
    "/mailings/{mailing_id}/stats",
    summary="One mailing's statistics",
    response_description="The mailing's statistics.",
    description=(
        "Counts by status, attempts, first and last send, and the failures by error class."
    ),
    responses=error_responses(401, 404, 422),
)
async def get_mailing_stats(session: SessionDep, mailing_id: MailingId) -> MailingStats:
    return await service.of_mailing(session, mailing_id)
