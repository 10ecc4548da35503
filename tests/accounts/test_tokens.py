"""Access tokens: standard HS256 JWTs, refused on any tampering, expiry exact."""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import json
import time

import jwt
import pytest

from services.core import Principal, errors, issue_access_token, tokens, verify_access_token
from services.core.tokens import _signing_key

SECRET = "s" * 40
CLERK = Principal(kind="staff", id=7, role="clerk", store_id=3)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_round_trip_keeps_kind_role_and_store():
    assert verify_access_token(SECRET, issue_access_token(SECRET, CLERK, 60)) == CLERK


def test_a_standard_jwt_library_accepts_our_tokens():
    claims = jwt.decode(
        issue_access_token(SECRET, CLERK, 60), _signing_key(SECRET), algorithms=["HS256"], audience="wxcampaign"
    )
    assert claims["sub"] == "7" and claims["knd"] == "staff" and claims["sto"] == 3


def test_expired_token():
    token = issue_access_token(SECRET, CLERK, 60, now=time.time() - 61)
    with pytest.raises(errors.TokenExpired):
        verify_access_token(SECRET, token)


def test_expiry_is_exact():
    issued = 1_000_000.0
    token = issue_access_token(SECRET, CLERK, 60, now=issued)
    assert verify_access_token(SECRET, token, now=issued + 59.9) == CLERK
    with pytest.raises(errors.TokenExpired):
        verify_access_token(SECRET, token, now=issued + 60)


def test_other_secret_is_invalid():
    with pytest.raises(errors.InvalidToken):
        verify_access_token("t" * 40, issue_access_token(SECRET, CLERK, 60))


@pytest.mark.parametrize("position", [0, 40, -1])
def test_any_changed_character_is_invalid(position):
    token = issue_access_token(SECRET, CLERK, 60)
    flipped = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1 :]
    with pytest.raises((errors.InvalidToken, errors.TokenExpired)):
        # A flip may also land in the payload; any outcome but acceptance is right.
        verify_access_token(SECRET, flipped)
    if position != 40:
        with pytest.raises(errors.InvalidToken):
            verify_access_token(SECRET, flipped)


def test_escalated_claims_with_the_old_signature_are_invalid():
    header, payload, signature = issue_access_token(SECRET, Principal(kind="customer", id=5), 60).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(knd="admin", rol="superadmin")
    with pytest.raises(errors.InvalidToken):
        verify_access_token(SECRET, f"{header}.{_b64(claims)}.{signature}")


def test_alg_none_and_other_headers_are_invalid():
    claims = {"sub": "1", "knd": "admin", "rol": "superadmin", "aud": "wxcampaign", "exp": int(time.time()) + 60}
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    with pytest.raises(errors.InvalidToken):
        verify_access_token(SECRET, unsigned)
    other_alg = jwt.encode(claims, _signing_key(SECRET) * 2, algorithm="HS512")
    with pytest.raises(errors.InvalidToken):
        verify_access_token(SECRET, other_alg)


@pytest.mark.parametrize("sub", ["\u00b9", "\u0661", "-1", ""])
def test_a_subject_that_is_not_ascii_digits_is_invalid(sub):
    # "¹" passes str.isdigit() and int() refuses it; int() reads U+0661 as 1.
    claims = {"sub": sub, "knd": "customer", "aud": "wxcampaign", "exp": int(time.time()) + 60, "iat": 0}
    with pytest.raises(errors.InvalidToken):
        verify_access_token(SECRET, jwt.encode(claims, _signing_key(SECRET), algorithm="HS256"))


def test_token_for_another_audience_is_invalid():
    claims = {"sub": "1", "knd": "customer", "aud": "someone-else", "exp": int(time.time()) + 60, "iat": 0}
    with pytest.raises(errors.InvalidToken):
        verify_access_token(SECRET, jwt.encode(claims, _signing_key(SECRET), algorithm="HS256"))


@pytest.mark.parametrize("garbage", ["", "a", "a.b", "a.b.c", "é.é.é", "..", "x" * 5000])
def test_garbage_is_invalid(garbage):
    with pytest.raises(errors.InvalidToken):
        verify_access_token(SECRET, garbage)


@pytest.mark.parametrize("secret", ["s" * 40, "another secret of another length", "ключ-密钥" * 9])
def test_tokens_signed_by_a_standard_library_are_accepted(secret):
    """Our HMAC (precomputed key pads) against pyjwt's, for claims of many lengths: every
    token pyjwt signs with the access-token key verifies, with the claims it carries."""
    for n in (1, 9, 99, 12345, 10**15):
        claims = {"sub": str(n), "knd": "staff", "aud": "wxcampaign", "exp": int(time.time()) + 60, "iat": 0,
                  "rol": "clerk" * (n % 7), "sto": n}  # fmt: skip
        token = jwt.encode(claims, _signing_key(secret), algorithm="HS256", headers={"typ": "JWT"})
        principal = verify_access_token(secret, token)
        assert principal == Principal(kind="staff", id=n, role="clerk" * (n % 7), store_id=n)
        assert issue_access_token(secret, principal, 60, now=0).split(".")[0] == token.split(".")[0]


def test_a_signed_payload_that_is_not_json_is_invalid():
    """Only we can sign, but a payload that is not our JSON must still be refused, not crash."""
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    for raw in (b"not json", b"\xff\xfe", b"[1, 2]", b'"text"'):
        payload = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        signing_input = f"{header}.{payload}".encode()
        signature = base64.urlsafe_b64encode(hmac.new(_signing_key(SECRET), signing_input, hashlib.sha256).digest())
        with pytest.raises(errors.InvalidToken):
            verify_access_token(SECRET, f"{header}.{payload}.{signature.rstrip(b'=').decode()}")


@pytest.mark.parametrize(
    "principal",
    [
        Principal(kind="customer", id=41),
        CLERK,
        Principal(kind="admin", id=2, role="approver", epoch=5, password_change=True),
    ],
)
def test_a_cached_token_gives_the_same_principal_and_leaves_the_collector_alone(principal: Principal) -> None:
    """The verified-token cache holds only atoms: after one collection the collector no
    longer tracks its entries, so a full cache adds nothing to a full collection's walk
    (docs/operations.md, "Event-loop stalls")."""
    token = issue_access_token(SECRET, principal, 60)
    first = verify_access_token(SECRET, token)
    again = verify_access_token(SECRET, token)  # from the cache
    assert first == again == principal
    assert again is not first
    gc.collect()
    entry = tokens._VERIFIED[(SECRET, token)]
    assert not gc.is_tracked(entry)
    assert verify_access_token(SECRET, token) == principal
    with pytest.raises(errors.TokenExpired):  # the expiry is still checked on a hit
        verify_access_token(SECRET, token, now=time.time() + 61)
