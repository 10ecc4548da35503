"""The customer's own profile and phone number."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, StringConstraints, model_validator

from models.customers import Customer
from server.access import CUSTOMER
from server.keys import JOURNEY, SETTINGS, WECHAT
from server.routing import RouteTable, principal_of
from services.accounts import customers
from services.core import Body, DisplayName, Id, Out, errors

routes = RouteTable()

Tag = Annotated[str, StringConstraints(min_length=1, max_length=24, strip_whitespace=True)]


class UserOut(Out):
    id: int
    nickname: str | None
    interest_tags: list[str]
    city: str | None
    preferred_store_id: int | None
    phone_number: str | None
    membership_tier: str
    created_at: datetime

    @classmethod
    def of(cls, customer: Customer) -> UserOut:
        return cls(
            id=customer.id,
            nickname=customer.nickname,
            interest_tags=list(customer.interest_tags or []),
            city=customer.city,
            preferred_store_id=customer.preferred_store_id,
            phone_number=customer.phone_number,
            membership_tier=customer.membership_tier,
            created_at=customer.created_at,
        )


class ProfilePatchIn(Body):
    """Only the fields sent change; null clears a field."""

    nickname: DisplayName | None = Field(default=None, min_length=1, max_length=32)
    interest_tags: list[Tag] | None = Field(default=None, max_length=20)
    preferred_store_id: Id | None = None
    city: DisplayName | None = Field(default=None, min_length=1, max_length=32)


class PhoneIn(Body):
    """Either ``code`` (from the phone-number button) or ``encrypted_data`` + ``iv``."""

    code: str | None = Field(default=None, min_length=1, max_length=128)
    encrypted_data: str | None = Field(default=None, min_length=1, max_length=4096)
    iv: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def one_flow(self) -> PhoneIn:
        if self.code is not None and (self.encrypted_data is not None or self.iv is not None):
            raise ValueError("send either code or encrypted_data + iv, not both")
        if self.code is None and (self.encrypted_data is None or self.iv is None):
            raise ValueError("send code, or both encrypted_data and iv")
        return self


@routes.add("GET", "/api/v1/me", access=CUSTOMER, tags=("me",), response=UserOut, summary="The caller's profile")
async def get_me(request: web.Request) -> UserOut:
    return UserOut.of(await customers.get(principal_of(request).id))


@routes.add(
    "PATCH", "/api/v1/me", access=CUSTOMER, tags=("me",), body=ProfilePatchIn, response=UserOut,
    summary="Update nickname, interest tags, preferred store or city",
)  # fmt: skip
async def patch_me(request: web.Request, body: ProfilePatchIn) -> UserOut:
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    if "interest_tags" in changes:
        # Tags are a set to the client: keep first-seen order, drop repeats; null clears.
        changes["interest_tags"] = list(dict.fromkeys(changes["interest_tags"] or []))
    return UserOut.of(await customers.update_profile(principal_of(request).id, changes, request.app[JOURNEY].redis))


@routes.add(
    "POST", "/api/v1/me/phone", access=CUSTOMER, tags=("me",), body=PhoneIn, response=UserOut,
    summary="Bind the phone number (getuserphonenumber code, or encryptedData + iv)",
    errors=(errors.InvalidPhoneCode, errors.PhoneDataInvalid, errors.NoWeChatSession, errors.WeChatBusy,
            errors.WeChatUnavailableError),
)  # fmt: skip
async def bind_phone(request: web.Request, body: PhoneIn) -> UserOut:
    customer_id = principal_of(request).id
    appid = request.app[SETTINGS].appid
    if body.code is not None:
        client = request.app[WECHAT]
        code = body.code
        info = await customers.call_wechat(
            lambda: client.get_phone_number(code),
            overrides={
                customers.wx.InvalidCode: errors.InvalidPhoneCode,
                customers.wx.CodeUsed: errors.InvalidPhoneCode,
            },
        )
        if info.watermark_appid != appid:
            raise errors.PhoneDataInvalid("the phone number was issued for another app")
        phone = customers.PhoneNumber(phone_number=info.phone_number, country_code=info.country_code)
    else:
        assert body.encrypted_data is not None and body.iv is not None  # checked by PhoneIn
        customer = await customers.get(customer_id)
        phone = customers.decrypt_phone(customer.session_key, appid, body.encrypted_data, body.iv)
    return UserOut.of(await customers.bind_phone(customer_id, phone))
