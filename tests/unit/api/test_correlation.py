"""Correlation ids: a sane caller's id is kept, anything else replaced by a fresh one."""

import pytest

from herald_api import correlation


@pytest.mark.parametrize("candidate", ["abc", "req-1.2:3_x", "A" * 64, "0f" * 16])
def test_sane_ids_are_kept(candidate: str) -> None:
    assert correlation.accept_or_generate(candidate) == candidate


@pytest.mark.parametrize(
    "candidate", [None, "", "A" * 65, "has space", "new\nline", "-leading", "é"]
)
def test_other_ids_are_replaced_by_a_uuid_hex(candidate: str | None) -> None:
    generated = correlation.accept_or_generate(candidate)

    assert generated != candidate
    assert len(generated) == 32
    int(generated, 16)
