"""``herald-api``: serve the REST API with uvicorn (HERALD_API_HOST, HERALD_API_PORT)."""

import uvicorn

from herald_api.app import create_app
from herald_api.settings import ApiSettings
from herald_common.logging import configure_logging

# uvicorn's graceful shutdown budget, inside the 10 s a service gets to stop.
GRACEFUL_SHUTDOWN_SECONDS = 7


def main() -> None:
    settings = ApiSettings()
    configure_logging("api", level=settings.log_level, fmt=settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        access_log=False,  # RequestContextMiddleware writes the access log
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


if __name__ == "__main__":
    main()
