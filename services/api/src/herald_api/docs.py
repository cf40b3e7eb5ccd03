"""Swagger UI at /docs from herald's own copy of its files, so it works without internet,
and the AsyncAPI document of herald's RabbitMQ flows at /asyncapi.yaml.

FastAPI's default page loads Swagger UI from a CDN, and shows a blank page where there is
none. The copies live in ``static/vendor/`` (``vendor.json`` says where each came from;
``make vendor`` refreshes them). There is no ReDoc page: it would be another 1 MB to vendor
for a second view of the same document.
"""

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from herald_common.broker import asyncapi

DOCS_PATH = "/docs"
ASYNCAPI_PATH = "/asyncapi.yaml"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
STATIC_PATH = "/static"
STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_UI_DIR = "vendor/swagger-ui"

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    # Swagger UI's default badge sends the document's URL to validator.swagger.io.
    "validatorUrl": None,
}


def install_docs(app: FastAPI) -> None:
    """The /docs page, its OAuth2 redirect page, and /static, which serves their files.

    Open, like the document itself: they are routes of the app, outside the keyed routers.
    """
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("/docs shows the app's OpenAPI document, and the app serves none")
    # A missing directory fails here, at start-up, not as a blank page in a browser.
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        # Paths rather than absolute URLs (url_for): behind a proxy that terminates TLS
        # those would say http:// and the browser would block them; root_path is the prefix
        # the proxy mounts herald under, as FastAPI's own page does.
        root = request.scope.get("root_path", "").rstrip("/")
        assets = f"{root}{STATIC_PATH}/{SWAGGER_UI_DIR}"
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_PATH,
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    # Rendered once: it depends only on the code.
    asyncapi_document = asyncapi.render()

    @app.get(ASYNCAPI_PATH, include_in_schema=False)
    async def asyncapi_yaml() -> Response:
        return Response(asyncapi_document, media_type="application/yaml")
