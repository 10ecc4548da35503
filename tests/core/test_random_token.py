"""Claim ids, voucher codes and invite codes: Crockford base32, every character equally likely."""

from __future__ import annotations

from collections import Counter

from services.core import random_token
from services.core.codes import _ALPHABET


def test_tokens_are_crockford_base32_of_the_length_asked() -> None:
    for length in (1, 16, 20, 26, 64):
        token = random_token(length)
        assert len(token) == length
        assert set(token) <= set(_ALPHABET)
    assert not set("ILOU") & set(_ALPHABET)


def test_every_character_is_equally_likely_and_tokens_do_not_repeat() -> None:
    tokens = [random_token(20) for _ in range(16_000)]
    assert len(set(tokens)) == len(tokens)
    counts = Counter("".join(tokens))
    assert set(counts) == set(_ALPHABET)
    # 320,000 characters, 10,000 expected each: a biased mapping (e.g. a byte taken modulo
    # a number that does not divide 256) would be off by far more than this.
    expected = 320_000 / 32
    chi_square = sum((n - expected) ** 2 / expected for n in counts.values())
    assert chi_square < 90  # 31 degrees of freedom: about 1 in 10 million of failing by chance
