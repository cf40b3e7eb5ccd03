"""structlog for every service: JSON lines off a TTY, readable console lines on one.

Context bound with ``structlog.contextvars`` (``mailing_id``, ``message_id``,
``client_id``, ``correlation_id``) is merged into every line; ``service`` is on all.
"""

import logging
import sys
from typing import Any

import orjson
import structlog

_HANDLER_NAME = "herald"


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure_logging(service: str, *, level: str = "info", fmt: str = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
    ]
    # A sender logs every request to the external API: JSON lines are rendered straight to
    # bytes and written to the byte stream, the cheapest path structlog has.
    stream = getattr(sys.stderr, "buffer", None)
    logger_factory: Any
    if use_json and stream is not None:
        renderer: structlog.types.Processor = structlog.processors.JSONRenderer(
            serializer=orjson.dumps
        )
        logger_factory = structlog.BytesLoggerFactory(file=stream)
    else:
        renderer = (
            structlog.processors.JSONRenderer(serializer=_dumps)
            if use_json
            else structlog.dev.ConsoleRenderer()
        )
        logger_factory = structlog.WriteLoggerFactory(file=sys.stderr)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )
    # Libraries (uvicorn, aio-pika, SQLAlchemy) log through stdlib logging: their warnings
    # go to the same stream in the same format, with the service and the bound ids, so
    # that every line of a JSON log parses.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(serializer=_dumps)
                if use_json
                else structlog.dev.ConsoleRenderer(),
            ],
        )
    )
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(previous)  # configured again (tests, the api's workers)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    # Python's own warnings too, instead of bare text lines on stderr.
    logging.captureWarnings(True)


def _add_service(service: str) -> structlog.types.Processor:
    def processor(
        _logger: Any, _method: str, event_dict: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return processor
