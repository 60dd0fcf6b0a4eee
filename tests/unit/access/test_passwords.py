"""Password hashes: scrypt with a random salt per hash, the parameters in the string, a
constant-time comparison, and nothing verified by a malformed or tampered hash."""

from __future__ import annotations

import base64
import hmac

import pytest

from mailroom.access import passwords
from mailroom.access.passwords import hash_password, verify_password

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password(PASSWORD)


def test_a_hash_names_its_scheme_and_parameters(stored: str) -> None:
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, int(n), int(r), int(p)) == (
        "scrypt",
        passwords.SCRYPT_N,
        passwords.SCRYPT_R,
        passwords.SCRYPT_P,
    )
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(digest)) == 32
    assert PASSWORD not in stored


def test_the_password_verifies_and_others_do_not(stored: str) -> None:
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + " ", stored)
    assert not verify_password("Correct horse battery staple", stored)
    assert not verify_password("", stored)


def test_each_hash_has_its_own_salt(stored: str) -> None:
    again = hash_password(PASSWORD)
    assert again != stored
    assert again.split("$")[4] != stored.split("$")[4]
    assert verify_password(PASSWORD, again)


def test_unicode_passwords_verify() -> None:
    stored = hash_password("pässwörd-ß-🔑")
    assert verify_password("pässwörd-ß-🔑", stored)
    assert not verify_password("passwort-ss-🔑", stored)


def _with_part(stored: str, index: int, value: str) -> str:
    parts = stored.split("$")
    parts[index] = value
    return "$".join(parts)


def _flip_last_byte(encoded: str) -> str:
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: _with_part(s, 5, _flip_last_byte(s.split("$")[5])), id="digest"),
        pytest.param(lambda s: _with_part(s, 4, _flip_last_byte(s.split("$")[4])), id="salt"),
        pytest.param(lambda s: _with_part(s, 1, str(passwords.SCRYPT_N // 2)), id="cost"),
        pytest.param(lambda s: _with_part(s, 0, "pbkdf2"), id="scheme"),
        pytest.param(lambda s: _with_part(s, 1, str(2**30)), id="cost too high"),
        pytest.param(lambda s: _with_part(s, 1, "1000"), id="cost not a power of two"),
        pytest.param(lambda s: _with_part(s, 5, "not base64!"), id="bad base64"),
        pytest.param(lambda s: _with_part(s, 5, ""), id="no digest"),
        pytest.param(lambda s: s.rpartition("$")[0], id="a part missing"),
        pytest.param(lambda s: "", id="empty"),
        pytest.param(lambda s: PASSWORD, id="the password itself"),
    ],
)
def test_a_tampered_or_malformed_hash_verifies_nothing(stored: str, tamper: object) -> None:
    assert callable(tamper)
    changed = tamper(stored)
    assert changed != stored
    assert not verify_password(PASSWORD, changed)


def test_digests_are_compared_in_constant_time(
    stored: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    assert verify_password(PASSWORD, stored)
    assert not verify_password("wrong", stored)
    assert len(compared) == 2
    assert all(len(a) == len(b) == 32 for a, b in compared)
