"""The route class of every endpoint that needs an API key: the key is checked before the
request's body is read, parsed or validated.

FastAPI reads and parses a body before it solves an endpoint's dependencies, so while the
key was checked only by a dependency, a malformed body without a key was a 422 that
described the endpoint's input to an anonymous caller. Routing still comes first, so an
unknown path stays a 404 and the access log still names the route and its ids.
"""

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute

from herald_api.deps import authenticate, authenticate_request

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class AuthenticatedRoute(APIRoute):
    """Declares ``authenticate`` (the bearer scheme in OpenAPI, the caller for endpoints)
    and runs it before FastAPI's own handling of the request."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        dependencies: Sequence[DependsParam] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            path, endpoint, dependencies=[Depends(authenticate), *(dependencies or ())], **kwargs
        )

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def authenticated_first(request: Request) -> Response:
            await authenticate_request(request, request.app.state.herald)
            return await handler(request)

        return authenticated_first
