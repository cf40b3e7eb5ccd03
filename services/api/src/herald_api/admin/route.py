"""What every admin route shares: the operator, the CSRF check, and errors as pages.

``AdminRoute`` adds ``verify_csrf`` to every route that takes an unsafe method, so that
no form can be added without it; the pages router adds ``current_operator`` to all. A
domain error (an unknown id, a conflict) or invalid query parameters become an HTML page
with the error's status, not the REST API's JSON.
"""

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends as DependsParam
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from herald_api.admin.auth import Operator, csrf_token, current_operator, verify_csrf
from herald_api.admin.templating import render, root_path
from herald_api.errors import HeraldError, summary, validation_fields

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Page:
    """The request being answered and who asked: what every template needs."""

    request: Request
    operator: Operator
    csrf_token: str

    def render(self, template: str, *, status_code: int = 200, **context: Any) -> Response:
        return render(
            self.request,
            template,
            {"operator": self.operator, "csrf_token": self.csrf_token, **context},
            status_code=status_code,
        )

    def url(self, name: str, query: Mapping[str, str] | None = None, **params: Any) -> str:
        path = root_path(self.request) + str(self.request.app.url_path_for(name, **params))
        return f"{path}?{urlencode(query)}" if query else path

    def see_other(
        self, name: str, query: Mapping[str, str] | None = None, **params: Any
    ) -> Response:
        """After a change, the page to show next (303: the browser GETs it)."""
        return RedirectResponse(self.url(name, query, **params), status_code=303)


async def page(
    request: Request,
    operator: Annotated[Operator, Depends(current_operator)],
    token: Annotated[str, Depends(csrf_token)],
) -> Page:
    return Page(request=request, operator=operator, csrf_token=token)


PageDep = Annotated[Page, Depends(page)]


def error_page(request: Request, status_code: int, message: str) -> Response:
    # No operator here: the error may come before the page dependency was solved, so the
    # layout leaves out what needs one (the logout form).
    return render(
        request,
        "error.html",
        {"operator": None, "csrf_token": None, "status_code": status_code, "message": message},
        status_code=status_code,
    )


def _has(dependencies: Sequence[DependsParam], call: Callable[..., Any]) -> bool:
    return any(dependency.dependency is call for dependency in dependencies)


class AdminRoute(APIRoute):
    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        dependencies: Sequence[DependsParam] | None = None,
        methods: set[str] | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        declared = list(dependencies or ())
        unsafe = set(methods or ()) - SAFE_METHODS
        # FastAPI before 0.16x built an included router's routes again from theirs: add once.
        if unsafe and not _has(declared, verify_csrf):
            declared.append(Depends(verify_csrf))
        super().__init__(path, endpoint, dependencies=declared, methods=methods, **kwargs)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def errors_as_pages(request: Request) -> Response:
            try:
                return await handler(request)
            except HeraldError as error:
                return error_page(request, error.status_code, error.message)
            except RequestValidationError as error:
                return error_page(request, 422, summary(validation_fields(error.errors())))

        return errors_as_pages
