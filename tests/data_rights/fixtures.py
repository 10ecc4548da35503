"""A customer with something in every table that can name one, for data-rights tests:
logged in through the WeChat emulator, with a profile, a phone number, vouchers grabbed
over HTTP (one redeemed), a purchase posted by a POS, points, campaigns, messages,
referrals and audit entries, and the Redis keys all that leaves behind."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from models.audience import CustomerDailyActivity, CustomerFacts, CustomerStoreVisit
from models.automation import AutomationRule, AutomationRun
from models.bargains import Bargain, BargainCut
from models.customers import Customer, TierChange
from models.draws import LuckyDraw
from models.experiments import Experiment, ExperimentExposure
from models.group_buy import GroupBuy, GroupMember
from models.journey import CheckIn, CustomerBadge, PointsBalance, PointsEntry, ProgressEntry, RewardGrant
from models.notifications import Notification, NotifySubscription
from models.participations import Participation
from models.redemptions import Redemption, VoucherReminder
from models.referrals import InviteCode, Referral
from models.stores import StaffMember, Store
from models.vouchers import Voucher
from server.keys import REDIS
from services.accounts import operators as accounts
from services.core import Actor, audit
from services.privacy import HOLDINGS
from tests.helpers import bearer, customer_login, logged_in_admin
from tests.journey.fixtures import Shopper, drain_claims, pos, purchase
from tests.stock.fixtures import LiveCoupon, live_coupon

EXPORT = "/api/v1/me/data-export"
ME = "/api/v1/me"
PHONE = "13800138000"


def admin_export(customer_id: int) -> str:
    return f"/api/v1/admin/customers/{customer_id}/export"


def admin_erase(customer_id: int) -> str:
    return f"/api/v1/admin/customers/{customer_id}/erase"


async def superadmin(client: TestClient) -> dict[str, str]:
    return bearer((await logged_in_admin(client, "superadmin"))["access_token"])


@dataclass
class Person:
    id: int
    openid: str
    unionid: str
    headers: dict[str, str]
    refresh_token: str
    coupons: list[LiveCoupon] = field(default_factory=list)
    #: Voucher ids: the one still available, the one redeemed.
    available: int = 0
    redeemed: int = 0


async def person(client: TestClient, openid: str = "o_erin", unionid: str = "u_erin") -> Person:
    """A customer logged in through the emulator, with a profile and a phone number.

    Other customers are made first, so the id is larger than any campaign, coupon or
    store id a test makes: a Redis key naming it can only be about this customer."""
    await Customer.bulk_create([Customer(openid=f"o_filler_{i}") for i in range(40)])
    login = await customer_login(client, openid, unionid)
    me = Person(login["user"]["id"], openid, unionid, bearer(login["access_token"]), login["refresh_token"])
    resp = await client.patch(
        ME, json={"nickname": "Erin", "interest_tags": ["coffee", "running"], "city": "Hangzhou"}, headers=me.headers
    )
    assert resp.status == 200, await resp.text()
    await Customer.filter(id=me.id).update(
        phone_number=PHONE, phone_country_code="86", phone_bound_at=datetime.now(UTC), phone_suffix=PHONE[-4:]
    )
    return me


async def history(client: TestClient, me: Person) -> None:
    """Rows naming ``me`` in every table of the catalog, and their Redis keys."""
    now = datetime.now(UTC)
    redis = client.server.app[REDIS]
    # Vouchers grabbed over HTTP (idempotency, rate and recent-claims keys in Redis).
    for n in range(2):
        coupon = await live_coupon(client, face_value=500 + n)
        resp = await client.post(coupon.grab_path, headers={**me.headers, "Idempotency-Key": f"grab-{n}"})
        assert resp.status in (200, 201), await resp.text()
        me.coupons.append(coupon)
    await drain_claims(client)
    vouchers = await Voucher.filter(customer_id=me.id).order_by("id")
    assert len(vouchers) == 2
    me.available, me.redeemed = vouchers[0].id, vouchers[1].id
    store = await accounts.create_store("DR01", "Data rights store", "Shanghai", 31.2, 121.5)
    staff = await accounts.create_staff("dr-clerk", "pw-0123456789", "Clerk", "clerk", store.id)
    await _redeemed(vouchers[1], store, staff, now)

    # A purchase from the POS on the order the voucher was redeemed on: the event, daily
    # activity, facts, store visit, points, its attribution.
    shop = await pos(client)
    body = purchase("dr-1", Shopper(me.id, me.openid, me.headers), 8800, store_id=store.id, order_ref="dr-order")
    resp = await shop.post(body)
    assert resp.status in (200, 201), await resp.text()

    campaign = me.coupons[0].campaign
    joined = await Participation.create(campaign_id=campaign.id, customer_id=me.id, progress=1)
    await ProgressEntry.create(
        participation=joined, source="visit", ref="dr-visit", delta=1, value_after=1, occurred_at=now
    )
    await CheckIn.get_or_create(customer_id=me.id, day=date.today(), defaults={"streak": 1})
    balance, _ = await PointsBalance.get_or_create(customer_id=me.id, defaults={"balance": 0})
    await PointsEntry.create(
        customer_id=me.id, delta=10, balance_after=balance.balance + 10, reason="manual", ref="dr-p"
    )
    await CustomerBadge.create(customer_id=me.id, badge="first_visit", campaign_id=campaign.id)
    await RewardGrant.create(
        participation=joined, ref=f"reward:{joined.id}:{me.coupons[1].template.id}", customer_id=me.id,
        campaign_id=campaign.id, template_id=me.coupons[1].template.id, trigger="completion",
    )  # fmt: skip
    await GroupBuy.create(
        id=77, campaign_id=campaign.id, leader_id=me.id, size=2, opened_at=now, expires_at=now + timedelta(hours=1)
    )
    await GroupMember.create(group_id=77, position=1, customer_id=me.id, joined_at=now)
    await CustomerDailyActivity.get_or_create(customer_id=me.id, day=date.today())
    await CustomerFacts.get_or_create(customer_id=me.id)
    await CustomerStoreVisit.get_or_create(
        customer_id=me.id, store_id=store.id, defaults={"last_visit_at": date.today()}
    )
    rule = await AutomationRule.create(name="welcome", trigger="joined", action="points", created_by=1, updated_by=1)
    await AutomationRun.create(rule=rule, customer_id=me.id, trigger="joined", run_after=now)
    await NotifySubscription.create(customer_id=me.id, template_id="emu_reward", remaining=2, accepted_total=2)
    await Notification.create(
        key=f"reward:{joined.id}", kind="reward", customer_id=me.id, payload={"name": "Erin"}, next_attempt_at=now
    )
    await VoucherReminder.create(
        voucher_id=me.available, customer_id=me.id, kind="expiring_soon", valid_until=now + timedelta(days=2)
    )
    await InviteCode.create(customer_id=me.id, code="ERIN0001")
    experiment = await Experiment.create(
        campaign_id=campaign.id, name="dr", salt="00", arms=[{"key": "a", "weight": 1}], primary_metric="join",
        created_by=1,
    )  # fmt: skip
    await ExperimentExposure.create(
        experiment=experiment, customer_id=me.id, arm=0, bucket_version=1, surface="feed", exposed_at=now
    )
    await LuckyDraw.create(
        draw_id="d-erin-1", campaign_id=campaign.id, customer_id=me.id, prize_key="none", prize_kind="none",
        entry="free", day=now.date().isoformat(), drawn_at=now,
    )  # fmt: skip
    await TierChange.create(customer_id=me.id, from_tier="standard", to_tier="gold", source="admin", admin_id=1)
    friend = await Customer.create(openid="o_friend")
    bargain = await Bargain.create(
        campaign_id=campaign.id, customer_id=me.id, participation_id=joined.id, mode="bargain", start_price=900,
        floor_price=100, cut_min=1, cut_max=50, helpers_needed=0, help_limit=1, price=870, seed="ab" * 16,
        expires_at=now + timedelta(days=1),
    )  # fmt: skip
    await BargainCut.create(
        bargain_id=bargain.id, campaign_id=campaign.id, helper_customer_id=me.id, seq=1, cut=30,
        price_before=900, price_after=870, lo=1, hi=50, draw=12345, helped_at=now,
    )  # fmt: skip
    await Referral.create(inviter_id=me.id, invitee_id=friend.id, code="ERIN0001")
    await audit.record(
        Actor.system(), "customer.update", "customer", me.id,
        {"nickname": "Erin", "phone_number": PHONE, "membership_tier": "standard"},
        {"nickname": "E.", "phone_number": "13900139000", "membership_tier": "gold"},
    )  # fmt: skip
    # Redis: the customer in audience sets, an exclusivity marker.
    await redis.sadd(f"{{feed-audience}}:{campaign.id}", me.id, 1)
    await redis.sadd(f"{{cmp:{campaign.id}}}:audience", me.id, 1)
    await redis.hset(f"{{xcl:{me.id}}}", f"h:{campaign.id}", "1")
    # Their feed profile (tier, interests, categories bought), written by a first look.
    resp = await client.get("/api/v1/feed", headers=me.headers)
    assert resp.status == 200, await resp.text()
    assert await redis.exists(f"{{journey}}:feed-profile:{me.id}")
    for holding in HOLDINGS:
        assert await holding.model.filter(holding.rows_of(me.id)).exists(), f"no {holding.table} row for the test"


async def _redeemed(voucher: Voucher, store: Store, staff: StaffMember, now: datetime) -> None:
    await Voucher.filter(id=voucher.id).update(
        status="used", used_at=now, used_store_id=store.id, used_by_staff_id=staff.id
    )
    await Redemption.create(
        voucher_id=voucher.id, store_id=store.id, staff_id=staff.id, customer_id=voucher.customer_id,
        campaign_id=voucher.campaign_id, template_id=voucher.template_id, face_value=voucher.face_value,
        order_ref="dr-order", order_amount=9900, idempotency_key="dr-idem", created_at=now,
    )  # fmt: skip


async def redis_keys_naming(client: TestClient, *needles: str) -> list[str]:
    """Every Redis key whose name contains one of ``needles`` as a whole token."""
    import re

    redis = client.server.app[REDIS]
    found = []
    patterns = [re.compile(rf"(?<![0-9A-Za-z_]){re.escape(n)}(?![0-9A-Za-z_])") for n in needles]
    async for raw in redis.scan_iter(count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if any(p.search(key) for p in patterns):
            found.append(key)
    return sorted(found)


def rows(document: dict[str, Any], table: str) -> list[dict[str, Any]]:
    return list(document["tables"][table])
