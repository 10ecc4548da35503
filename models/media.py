"""Uploaded images (campaign banners and posters), stored under MEDIA_ROOT."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class MediaFile(Model):
    id = fields.BigIntField(primary_key=True)
    # Content address: the file name under MEDIA_ROOT is derived from it.
    sha256 = fields.CharField(max_length=64, unique=True)
    content_type = fields.CharField(max_length=32)
    width = fields.IntField()
    height = fields.IntField()
    size_bytes = fields.IntField()
    uploaded_by = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "media_files"
