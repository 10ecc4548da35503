"""Random codes for people to read back: voucher codes, claim ids, invite codes."""

from __future__ import annotations

import os

#: Crockford's base32: no I, L, O, U, so codes read back without confusion.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


#: A random byte's low 5 bits as a character: 256 is a multiple of 32, so each of the 32
#: characters stays equally likely.
_CHARACTER_OF_BYTE = bytes(_ALPHABET.encode()[byte & 31] for byte in range(256))


def random_token(length: int) -> str:
    """``length`` Crockford base32 characters, 5 random bits each, from one urandom call
    and one table look-up in C (on the grab path: a character at a time cost ~70 system
    calls per grab, and ``base64.b32encode`` is pure Python on 3.11)."""
    return os.urandom(length).translate(_CHARACTER_OF_BYTE).decode()
