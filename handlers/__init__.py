"""HTTP edge only: parse and validate input, check the caller, call a service, shape the answer."""

from __future__ import annotations

from handlers.admin import alert_rules as admin_alert_rules
from handlers.admin import analytics as admin_analytics
from handlers.admin import audiences as admin_audiences
from handlers.admin import audit as admin_audit
from handlers.admin import auth as admin_auth
from handlers.admin import automation as admin_automation
from handlers.admin import budget as admin_budget
from handlers.admin import calendar as admin_calendar
from handlers.admin import campaigns as admin_campaigns
from handlers.admin import coupons as admin_coupons
from handlers.admin import customers as admin_customers
from handlers.admin import data_rights as admin_data_rights
from handlers.admin import exclusivity as admin_exclusivity
from handlers.admin import experiments as admin_experiments
from handlers.admin import forms as admin_forms
from handlers.admin import group_buy as admin_group_buy
from handlers.admin import integrations as admin_integrations
from handlers.admin import media as admin_media
from handlers.admin import notifications as admin_notifications
from handlers.admin import preview as admin_preview
from handlers.admin import redemptions as admin_redemptions
from handlers.admin import roi as admin_roi
from handlers.admin import stores as admin_stores
from handlers.admin import themes as admin_themes
from handlers.admin import webhooks as admin_webhooks
from handlers.customer import auth as customer_auth
from handlers.customer import bargains as customer_bargains
from handlers.customer import coupons as customer_coupons
from handlers.customer import data_rights as customer_data_rights
from handlers.customer import draws as customer_draws
from handlers.customer import exchange as customer_exchange
from handlers.customer import feed as customer_feed
from handlers.customer import group_buy as customer_group_buy
from handlers.customer import journey as customer_journey
from handlers.customer import me as customer_me
from handlers.customer import referrals as customer_referrals
from handlers.customer import subscriptions as customer_subscriptions
from handlers.customer import vouchers as customer_vouchers
from handlers.partner import events as partner_events
from handlers.public import media, metrics, system
from handlers.staff import auth as staff_auth
from handlers.staff import redemptions as staff_redemptions
from server.routing import RouteTable


def all_routes() -> RouteTable:
    table = RouteTable()
    modules = (
        system, media, metrics,
        customer_auth, customer_me, customer_subscriptions, customer_coupons, customer_vouchers,
        admin_auth, admin_stores, admin_campaigns, admin_calendar, admin_media, admin_audiences, admin_themes,
        admin_exclusivity, admin_budget, admin_audit, admin_coupons, admin_redemptions, admin_analytics,
        staff_auth, staff_redemptions,
        customer_journey, customer_feed, partner_events, admin_integrations, customer_exchange, customer_referrals,
        admin_automation, admin_notifications, admin_customers, customer_data_rights, admin_data_rights,
        admin_preview, admin_webhooks, admin_alert_rules, admin_roi, customer_group_buy, admin_group_buy,
        admin_experiments,
        customer_bargains,
        customer_draws,
        admin_forms,
    )  # fmt: skip
    for module in modules:
        table.extend(module.routes)
    return table
