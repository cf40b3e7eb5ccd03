"""API key format, prefix extraction and hashing."""

import pytest

from herald_api.auth import keys


def test_a_generated_key_has_the_documented_shape_and_matches_its_hash() -> None:
    new = keys.generate()

    assert new.key.startswith(f"hk_{new.prefix}_")
    assert len(new.prefix) == keys.PREFIX_LENGTH
    assert len(new.key) >= 3 + 8 + 1 + 32
    assert keys.prefix_of(new.key) == new.prefix
    assert keys.matches(new.key, new.key_hash)
    assert new.key not in new.key_hash
    assert len(new.key_hash) == 64


def test_keys_differ_each_time() -> None:
    assert len({keys.generate().key for _ in range(50)}) == 50


def test_a_prefix_containing_underscores_is_split_by_position() -> None:
    key = "hk_a_b_c_d__" + "s" * 40

    assert keys.prefix_of(key) == "a_b_c_d_"


@pytest.mark.parametrize(
    "candidate",
    ["", "hk_", "hk_abcdefgh_short", "xx_abcdefgh_" + "s" * 40, "hk_abcdefgh-" + "s" * 40,
     "hk_abc$efgh_" + "s" * 40, "hk_abcdefgh_" + "s" * 200, " hk_abcdefgh_" + "s" * 40],
)  # fmt: skip
def test_malformed_keys_have_no_prefix(candidate: str) -> None:
    assert keys.prefix_of(candidate) is None


def test_a_different_key_does_not_match_the_hash() -> None:
    new = keys.generate()

    assert not keys.matches(new.key + "x", new.key_hash)
    assert not keys.matches(keys.generate().key, new.key_hash)
