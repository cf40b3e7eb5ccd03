"""405s that name every method a path takes, judged from the path's most literal routes.

Starlette answers 405 from the first route whose path matches, so ``OPTIONS /clients/7``
said ``Allow: GET`` though the path also takes PATCH and DELETE. And ``/clients/import``
also matches ``/clients/{client_id}``, so ``PATCH /clients/import`` reached the client
route and was a 422 about the id. Here a path belongs to the matching routes with the
fewest path parameters (a literal segment beats a parameter, as in most routers), and a
method none of them takes is a 405 whose ``Allow`` lists the methods they do take.

The router still picks the route for an allowed method; that is the same route as long as
a literal path is declared before a parameter that also matches it, as FastAPI advises.
"""

from collections.abc import Sequence

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from herald_api.errors import error_response


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> frozenset[str] | None:
    """The methods of the most literal routes whose path matches the request's; None when
    no route matches or one that takes any method (a mount) does: the router decides."""
    matching: list[tuple[int, set[str]]] = []
    for route in iter_route_contexts(routes):
        match, _ = route.matches(scope)
        if match is Match.NONE:
            continue
        if not route.methods:
            return None
        matching.append((len(route.param_convertors), route.methods))
    if not matching:
        return None
    fewest = min(parameters for parameters, _ in matching)
    return frozenset().union(*(methods for parameters, methods in matching if parameters == fewest))


class AllowedMethodsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            allowed = allowed_methods(scope["app"].routes, scope)
            if allowed is not None and scope["method"] not in allowed:
                response = error_response(
                    405,
                    "method_not_allowed",
                    f"{scope['method']} is not allowed on {scope['path']}",
                    headers={"Allow": ", ".join(sorted(allowed))},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
