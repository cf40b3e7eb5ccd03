"""API key format: ``hk_<8-char prefix>_<secret>``; only a SHA-256 of the whole key is stored.

The prefix is looked up, the hash compared in constant time. Both parts use the
urlsafe base64 alphabet (which contains ``_``), so the key is split by position.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX_LENGTH = 8
_SCHEME = "hk_"
_SHAPE = re.compile(rf"hk_[A-Za-z0-9_-]{{{PREFIX_LENGTH}}}_[A-Za-z0-9_-]{{32,128}}")


@dataclass(frozen=True)
class NewKey:
    key: str
    prefix: str
    key_hash: str


def generate() -> NewKey:
    prefix = secrets.token_urlsafe(6)  # 6 bytes are exactly 8 base64 characters
    key = f"{_SCHEME}{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, key_hash=hash_key(key))


def prefix_of(key: str) -> str | None:
    """The lookup prefix of a well-formed key, None for anything else."""
    if not _SHAPE.fullmatch(key):
        return None
    return key[len(_SCHEME) : len(_SCHEME) + PREFIX_LENGTH]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def matches(key: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), key_hash)
