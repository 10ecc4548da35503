"""Customers: WeChat login, profile, phone number binding."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction
from wechatpy.crypto import WeChatWxaCrypto
from wechatpy.exceptions import InvalidAppIdException

from miniprogram_api import errors as wx
from models.customers import Customer, phone_suffix_of
from models.stores import Store
from services.core import AnyRedis, errors
from services.feed import viewer_changed

T = TypeVar("T")

#: How WeChat's errcodes surface to our clients.
_WECHAT_LOGIN_ERRORS: dict[type[wx.WeChatError], type[errors.AppError]] = {
    wx.InvalidCode: errors.InvalidLoginCode,
    wx.CodeUsed: errors.LoginCodeUsed,
    wx.RateLimited: errors.WeChatRateLimited,
    wx.RiskyUser: errors.WeChatUserBlocked,
    wx.SystemBusy: errors.WeChatBusy,
}


async def call_wechat(
    call: Callable[[], Awaitable[T]], overrides: dict[type[wx.WeChatError], type[errors.AppError]] | None = None
) -> T:
    """Run a WeChat call, translating its failures into our error catalogue."""
    table = {**_WECHAT_LOGIN_ERRORS, **(overrides or {})}
    try:
        return await call()
    except wx.WeChatUnavailable:
        raise errors.WeChatUnavailableError() from None
    except wx.WeChatError as exc:
        for kind, mapped in table.items():
            if isinstance(exc, kind):
                raise mapped(details={"wechat_errcode": exc.errcode}) from None
        raise errors.WeChatError(details={"wechat_errcode": exc.errcode}) from None


async def login(
    openid: str, session_key: str, unionid: str | None, on_create: Callable[[Customer], Awaitable[None]] | None = None
) -> tuple[Customer, bool]:
    """Upsert the customer for an openid; returns (customer, created).

    Two first logins of one openid may race: the unique openid decides, and the loser
    reads the winner's row. ``on_create`` runs inside the transaction that creates the
    customer (only for a new customer, and only in the request that created it): what it
    writes commits with the customer, or not at all. It must handle its own unique
    conflicts (in a savepoint).
    """
    now = datetime.now(UTC)
    customer = await Customer.get_or_none(openid=openid)
    created = False
    if customer is None:
        try:
            async with in_transaction():
                customer = await Customer.create(
                    openid=openid, unionid=unionid, session_key=session_key, last_login_at=now
                )
                if on_create is not None:
                    await on_create(customer)
            return customer, True
        except IntegrityError:
            customer = await Customer.get(openid=openid)
    customer.session_key = session_key
    customer.last_login_at = now
    update = ["session_key", "last_login_at"]
    if unionid and customer.unionid != unionid:
        customer.unionid = unionid
        update.append("unionid")
    await customer.save(update_fields=update)
    return customer, created


async def get(customer_id: int) -> Customer:
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None or customer.erased_at is not None:
        # A valid token for a deleted (or erased) customer: the session is no longer meaningful.
        raise errors.InvalidToken("this account no longer exists")
    return customer


async def update_profile(customer_id: int, changes: dict[str, Any], redis: AnyRedis) -> Customer:
    """Apply a partial profile update; fields absent from ``changes`` stay as they are.
    ``redis`` holds the feed's viewer versions (interests and store rank the feed)."""
    customer = await get(customer_id)
    if "preferred_store_id" in changes and changes["preferred_store_id"] is not None:
        if not await Store.filter(id=changes["preferred_store_id"], is_active=True).exists():
            raise errors.ValidationFailed(
                "preferred_store_id: no such store",
                details={"errors": [{"field": "preferred_store_id", "message": "no such store", "type": "not_found"}]},
            )
    for name, value in changes.items():
        setattr(customer, name, value)
    if changes:
        await customer.save(update_fields=list(changes))
        await viewer_changed(redis, customer_id)
    return customer


@dataclass(frozen=True)
class PhoneNumber:
    phone_number: str
    country_code: str | None


async def bind_phone(customer_id: int, phone: PhoneNumber) -> Customer:
    customer = await get(customer_id)
    customer.phone_number = phone.phone_number
    customer.phone_suffix = phone_suffix_of(phone.phone_number)
    customer.phone_country_code = phone.country_code
    customer.phone_bound_at = datetime.now(UTC)
    await customer.save(update_fields=["phone_number", "phone_suffix", "phone_country_code", "phone_bound_at"])
    return customer


def decrypt_phone(session_key: str | None, appid: str, encrypted_data: str, iv: str) -> PhoneNumber:
    """Decrypt the older `encryptedData` flow with the stored session_key.

    Any failure (wrong key, tampered data, another app's watermark) is one error: the
    client cannot fix it except by logging in again and retrying.
    """
    if not session_key:
        raise errors.NoWeChatSession()
    try:
        base64.b64decode(iv, validate=True)
        base64.b64decode(encrypted_data, validate=True)
        data = WeChatWxaCrypto(session_key, iv, appid).decrypt_message(encrypted_data)
    except InvalidAppIdException:
        raise errors.PhoneDataInvalid("the data was encrypted for another app") from None
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError, UnicodeDecodeError, KeyError):
        raise errors.PhoneDataInvalid() from None
    number = data.get("phoneNumber") or data.get("purePhoneNumber")
    if not isinstance(number, str) or not number:
        raise errors.PhoneDataInvalid("the decrypted data holds no phone number")
    country = data.get("countryCode")
    return PhoneNumber(phone_number=number, country_code=str(country) if country else None)
