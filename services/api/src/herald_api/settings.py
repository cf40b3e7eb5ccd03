"""The api's settings: the shared HeraldSettings, the admin login, the HTTP server's knobs."""

from pydantic import Field

from herald_api.admin_settings import AdminSettings
from herald_common.settings import HeraldSettings


class ApiSettings(HeraldSettings, AdminSettings):
    """``HERALD_*`` variables read by the api and the ``herald`` admin CLI."""

    api_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    api_port: int = Field(default=8000, ge=0, le=65535, description="Port the HTTP server binds.")
    api_max_body_bytes: int = Field(
        default=65_536, ge=1, description="Largest JSON request body accepted (413 above)."
    )
    api_max_import_bytes: int = Field(
        default=536_870_912, ge=1, description="Largest bulk-import body accepted (413 above)."
    )
    idempotency_key_ttl: float = Field(
        default=86_400.0,
        gt=0,
        description="Seconds an Idempotency-Key is kept with its response: a repeat within"
        " them gets that response again; after them the key is as good as new.",
    )
    outbox_relay_interval: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between the relay's sweeps for outbox rows left unpublished.",
    )
