"""Admin accounts for the management endpoints."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

ADMIN_ROLES = ("operator", "reviewer", "approver", "superadmin")


class Admin(Model):
    id = fields.BigIntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharField(max_length=16)
    display_name = fields.CharField(max_length=64, default="")
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)
    # Put into every access token at issue; raised when the account is disabled or its
    # role or password changes, so tokens already handed out stop working (issue 15).
    token_epoch = fields.IntField(default=0)
    # Set by a password reset: the next login's token may only change the password.
    must_change_password = fields.BooleanField(default=False)
    # The admin's WeChat openid in the mini program (a customer of it), bound by the admin
    # or a superadmin: alerts go there as subscribe messages when ``alert_wechat`` is on.
    wechat_openid = fields.CharField(max_length=64, null=True)
    alert_wechat = fields.BooleanField(default=False)

    class Meta:
        table = "admins"
