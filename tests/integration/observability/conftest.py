"""The api under test, shared with the api's own integration tests (same app, same key)."""

from tests.integration.api.conftest import anonymous, api, api_key, app

__all__ = ["anonymous", "api", "api_key", "app"]
