"""The AsyncAPI document: valid AsyncAPI 3.0, complete, and the committed copy is current."""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from herald_common.broker import asyncapi, topology

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "schemas" / "asyncapi-3.0.0.json"
COMMITTED = ROOT / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # Through YAML, as a reader gets it.
    loaded: dict[str, Any] = yaml.safe_load(asyncapi.render())
    return loaded


def test_the_document_validates_against_the_official_asyncapi_3_schema(
    document: dict[str, Any],
) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [
        f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)
    ]
    assert errors == []


def test_the_schema_check_catches_a_broken_document(document: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(document))
    broken["operations"]["sender.defer"]["action"] = "publish"  # AsyncAPI 2's word
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    assert not validator.is_valid(broken)


def test_every_exchange_queue_and_contract_is_documented(document: dict[str, Any]) -> None:
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {e.name for e in topology.EXCHANGES} <= addresses
    assert {q.name for q in topology.QUEUES} <= addresses
    assert {tier.queue for tier in topology.RETRY_TIERS} <= addresses
    assert set(document["components"]["messages"]) == {m.__name__ for m in asyncapi.CONTRACTS}


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    def resolve(ref: str) -> Any:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    references = refs(document)
    assert len(references) > 20
    for ref in references:
        assert resolve(ref) is not None, ref


def test_the_committed_copy_is_current() -> None:
    assert COMMITTED.read_text() == asyncapi.render(), (
        "docs/asyncapi.yaml is stale: run `make docs`"
    )
