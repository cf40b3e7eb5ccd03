"""The dashboard: totals by status, live counters of running and upcoming mailings, and
the per-minute chart of sends, with the fragments and chart data its htmx and JS fetch."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from herald_api.admin.route import AdminRoute, PageDep
from herald_api.admin.templating import ADMIN_PATH
from herald_api.deps import SessionDep
from herald_api.params import MailingId
from herald_api.stats import service as stats
from herald_api.stats.service import MAX_CHART_HOURS

router = APIRouter(prefix=ADMIN_PATH, route_class=AdminRoute)

ACTIVE_LIMIT = 20
CHART_SPANS = (1, 3, 6, 24)
DEFAULT_HOURS = 3
Hours = Annotated[int, Query(ge=1, le=MAX_CHART_HOURS)]


@router.get("", name="admin_dashboard")
async def dashboard(page: PageDep, session: SessionDep, hours: Hours = DEFAULT_HOURS) -> Response:
    return page.render(
        "dashboard.html",
        title="Dashboard",
        section="admin_dashboard",
        totals=await stats.totals(session),
        mailings_by_status=await stats.mailings_by_status(session),
        active=await stats.active_progress(session, ACTIVE_LIMIT),
        active_limit=ACTIVE_LIMIT,
        hours=hours,
        chart_spans=CHART_SPANS,
    )


@router.get("/dashboard/totals", name="admin_dashboard_totals")
async def totals(page: PageDep, session: SessionDep) -> Response:
    return page.render(
        "_totals.html",
        totals=await stats.totals(session),
        mailings_by_status=await stats.mailings_by_status(session),
    )


@router.get("/mailings/{mailing_id}/progress", name="admin_mailing_progress")
async def progress(
    page: PageDep,
    session: SessionDep,
    mailing_id: MailingId,
    view: Literal["row", "card"] = "card",
) -> Response:
    """A mailing's live counters, as a dashboard row or the detail page's card."""
    found = await stats.progress(session, mailing_id)
    template = "_progress_row.html" if view == "row" else "_progress_card.html"
    return page.render(template, progress=found)


@router.get("/charts/sends", name="admin_chart_sends")
async def sends_chart(
    _page: PageDep,
    session: SessionDep,
    hours: Hours = DEFAULT_HOURS,
    mailing_id: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Messages sent per minute, for Chart.js: one label (the minute's start, UTC) and one
    count per minute of the span, zeros included."""
    sends = await stats.sends_per_minute(session, hours=hours, mailing_id=mailing_id)
    return JSONResponse(
        {
            "since": sends.since.isoformat(),
            "until": sends.until.isoformat(),
            "minutes": [minute.isoformat() for minute in sends.minutes],
            "counts": sends.counts,
        },
        headers={"Cache-Control": "no-store"},
    )
