"""Admin passwords, hashed with the standard library's scrypt (RFC 7914).

A stored hash reads ``scrypt$n$r$p$salt$hash`` (salt and hash in standard base64), so the
cost parameters travel with each hash: raising :data:`SCRYPT_N` later makes new hashes
costlier while old ones still verify with the parameters they were made with.

scrypt, unlike the sha256 API keys are stored with, is slow on purpose: a password is chosen
by a person and guessable, so each guess against a stolen hash must cost real work (about
64 MiB of memory and tens of milliseconds here).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

__all__ = ["SCRYPT_N", "SCRYPT_P", "SCRYPT_R", "hash_password", "verify_password"]

SCRYPT_N = 2**16
"""CPU/memory cost: with r=8, 64 MiB and a few tenths of a second per hash on a small, busy
machine. OWASP's advice is 2^17; half that keeps a login quick on a shared host and still
costs a guesser 64 MiB per try."""
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
_SCHEME = "scrypt"
# The most a stored hash may ask for: a tampered row must not make a login eat the machine.
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16


def hash_password(password: str) -> str:
    """A new hash of ``password`` with a fresh random salt, parameters included."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        (_SCHEME, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest))
    )


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from. A malformed or tampered
    ``stored`` verifies nothing; the digests are compared in constant time."""
    parsed = _parse(stored)
    if parsed is None:
        return False
    n, r, p, salt, expected = parsed
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return None
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    power_of_two = n > 1 and n & (n - 1) == 0
    if not (power_of_two and n <= _MAX_N and 0 < r <= _MAX_R and 0 < p <= _MAX_P):
        return None
    if not salt or len(expected) != _HASH_BYTES:
        return None
    return n, r, p, salt, expected


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        # 128 * n * r bytes are needed; OpenSSL's default cap (32 MiB) is below that.
        maxmem=128 * n * r * p + 1024 * 1024,
        dklen=_HASH_BYTES,
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
