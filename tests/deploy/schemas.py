"""Published JSON schemas that check-jsonschema ships (Compose, GitHub workflows, GitLab CI)."""

import json
from importlib.resources import files
from typing import Any

from jsonschema import Draft7Validator, ValidationError, validators


def vendored_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        files("check_jsonschema.builtin_schemas.vendor").joinpath(f"{name}.json").read_text()
    )
    return schema


def schema_errors(document: Any, schema_name: str) -> list[str]:
    """Every way ``document`` breaks the schema, as readable lines (none when it is valid)."""
    schema = vendored_schema(schema_name)
    validator_class = validators.validator_for(schema, default=Draft7Validator)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors: list[ValidationError] = sorted(
        validator.iter_errors(document), key=lambda error: list(error.absolute_path)
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in errors
    ]
