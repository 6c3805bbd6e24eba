"""API keys: digests, lookup, and the key-making command."""

import hashlib
import json

import pytest

from voicegraph.access.keys import KEY_PREFIX, KeyRing, hash_key, main, new_key
from voicegraph.core.errors import AuthenticationError
from voicegraph.core.settings import ApiKey

GOOD, OLD = "vg_good-key", "vg_old-key"
RING = KeyRing([ApiKey(name="app", sha256=hash_key(GOOD)), ApiKey(name="old", sha256=hash_key(OLD), revoked=True)])


def test_hash_is_sha256_hex():
    assert hash_key("abc") == hashlib.sha256(b"abc").hexdigest()


def test_new_keys_are_prefixed_long_and_unique():
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(key.startswith(KEY_PREFIX) and len(key) >= 40 for key in keys)


def test_a_configured_key_is_identified():
    assert RING.identify(GOOD).name == "app"


@pytest.mark.parametrize(
    ("presented", "words"),
    [
        (None, "no API key"),
        ("vg_wrong", "not valid"),
        ("", "not valid"),
        (hash_key(GOOD), "not valid"),  # the digest itself is not a key
        (GOOD.upper(), "not valid"),
        (OLD, "revoked"),
    ],
)
def test_refusals_say_why(presented, words):
    with pytest.raises(AuthenticationError) as raised:
        RING.identify(presented)
    assert raised.value.status_code == 401 and words in raised.value.message
    assert raised.value.headers() == {"WWW-Authenticate": "Bearer"}


def test_a_refusal_never_echoes_the_presented_key():
    with pytest.raises(AuthenticationError) as raised:
        RING.identify("vg_secret-typo")
    assert "vg_secret-typo" not in raised.value.message


def test_the_command_prints_a_key_and_an_entry_that_admits_it(capsys):
    main(["mobile-app"])
    lines = capsys.readouterr().out.splitlines()
    key = lines[0].rsplit(" ", 1)[1]
    entry = ApiKey(**json.loads(lines[-1]))
    assert KeyRing([entry]).identify(key).name == "mobile-app"
    assert key not in lines[-1]
