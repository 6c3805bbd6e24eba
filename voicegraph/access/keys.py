"""API keys: made once, shown once, kept only as SHA-256 digests.

The service never stores or logs a plain key: settings hold each key's
digest, and a presented key is hashed and looked up. A key is high-entropy
random text, so an unsalted digest is enough to make a leaked config useless.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets

from voicegraph.core.errors import AuthenticationError
from voicegraph.core.settings import ApiKey

# The prefix makes a leaked key easy to recognise in code or logs (secret scanners).
KEY_PREFIX = "vg_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """The configured keys, looked up by digest."""

    def __init__(self, keys: list[ApiKey]):
        self._by_digest = {key.sha256: key for key in keys}

    def identify(self, presented: str | None) -> ApiKey:
        if presented is None:
            raise AuthenticationError(
                "no API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        digest = hash_key(presented)
        # Constant-time compare after the lookup, so the check does not leak
        # how much of a guessed digest matched.
        key = self._by_digest.get(digest)
        if key is None or not hmac.compare_digest(key.sha256, digest):
            raise AuthenticationError("the API key is not valid; check it, or ask for a new one")
        if key.revoked:
            raise AuthenticationError(f"the API key {key.name!r} was revoked; ask for a new one")
        return key


def main(argv: list[str] | None = None) -> None:
    """`voicegraph-apikey NAME`: a new key, and the settings entry that admits it."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("name", help="who the key is for, e.g. 'mobile-app'; shown in logs and limits")
    args = parser.parse_args(argv)
    key = new_key()
    entry = ApiKey(name=args.name, sha256=hash_key(key))
    print(f"key (give it to the client; it is not stored anywhere): {key}")
    print("settings entry (auth.keys in serve_config.yaml, or VG_AUTH__KEYS as a JSON list):")
    print(json.dumps(entry.model_dump(exclude_defaults=True)))
