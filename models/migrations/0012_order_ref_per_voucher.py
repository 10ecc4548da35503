from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index


# A basket carries several vouchers: order_ref is unique per (store, order, voucher), no
# longer per (store, order). PostgreSQL swaps the constraint; SQLite cannot drop a table
# constraint, so the table is rebuilt with the new one (nothing references redemptions).
_OLD = "uid_redemptions_store_i_b68f0b"  # (store_id, order_ref), as 0004 made it
_NEW = "uid_redemptions_store_i_f35a86"  # (store_id, order_ref, voucher_id), tortoise's name for it

_SQLITE_TABLE = '''CREATE TABLE "redemptions_new" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "customer_id" BIGINT NOT NULL,
    "campaign_id" BIGINT NOT NULL,
    "template_id" BIGINT NOT NULL,
    "face_value" BIGINT NOT NULL,
    "order_ref" VARCHAR(64),
    "order_amount" BIGINT,
    "idempotency_key" VARCHAR(64),
    "created_at" TIMESTAMP NOT NULL,
    "reversed_at" TIMESTAMP,
    "reverse_reason" VARCHAR(500),
    "reversed_by_id" BIGINT REFERENCES "staff_members" ("id") ON DELETE RESTRICT,
    "staff_id" BIGINT NOT NULL REFERENCES "staff_members" ("id") ON DELETE RESTRICT,
    "store_id" BIGINT NOT NULL REFERENCES "stores" ("id") ON DELETE RESTRICT,
    "voucher_id" BIGINT NOT NULL REFERENCES "vouchers" ("id") ON DELETE RESTRICT,
    CONSTRAINT "{unique}" UNIQUE ({order_columns}),
    CONSTRAINT "uid_redemptions_store_i_59ec1d" UNIQUE ("store_id", "idempotency_key")
)'''
_COLUMNS = (
    '"id", "customer_id", "campaign_id", "template_id", "face_value", "order_ref", "order_amount", '
    '"idempotency_key", "created_at", "reversed_at", "reverse_reason", "reversed_by_id", "staff_id", "store_id", '
    '"voucher_id"'
)
_SQLITE_INDEXES = [
    'CREATE INDEX "idx_redemptions_store_created" ON "redemptions" ("store_id", "created_at")',
    'CREATE INDEX "idx_redemptions_created" ON "redemptions" ("created_at")',
    'CREATE INDEX "idx_redemptions_campaign_created" ON "redemptions" ("campaign_id", "created_at")',
    'CREATE INDEX "idx_redemptions_staff" ON "redemptions" ("staff_id")',
    'CREATE INDEX "idx_redemptions_voucher" ON "redemptions" ("voucher_id")',
]


async def _rebuild_sqlite(client, unique, order_columns):
    await client.execute_script(
        ";\n".join([
            _SQLITE_TABLE.format(unique=unique, order_columns=order_columns),
            f'INSERT INTO "redemptions_new" ({_COLUMNS}) SELECT {_COLUMNS} FROM "redemptions"',
            'DROP TABLE "redemptions"',
            'ALTER TABLE "redemptions_new" RENAME TO "redemptions"',
            *_SQLITE_INDEXES,
        ])
    )


async def per_voucher(apps, schema_editor):
    client = schema_editor.client
    if schema_editor.DIALECT == "postgres":
        await client.execute_script(
            f'ALTER TABLE "redemptions" DROP CONSTRAINT "{_OLD}";'
            f' ALTER TABLE "redemptions" ADD CONSTRAINT "{_NEW}" UNIQUE ("store_id", "order_ref", "voucher_id")'
        )
    else:
        await _rebuild_sqlite(client, _NEW, '"store_id", "order_ref", "voucher_id"')


async def per_order(apps, schema_editor):
    # Fails, as it should, if one order now carries several vouchers.
    client = schema_editor.client
    if schema_editor.DIALECT == "postgres":
        await client.execute_script(
            f'ALTER TABLE "redemptions" DROP CONSTRAINT "{_NEW}";'
            f' ALTER TABLE "redemptions" ADD CONSTRAINT "{_OLD}" UNIQUE ("store_id", "order_ref")'
        )
    else:
        await _rebuild_sqlite(client, _OLD, '"store_id", "order_ref"')


class Migration(migrations.Migration):
    dependencies = [('models', '0011_refund_policy')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='Redemption',
            options={'table': 'redemptions', 'app': 'models', 'unique_together': (('store', 'order_ref', 'voucher'), ('store', 'idempotency_key')), 'indexes': [Index(fields=['store_id', 'created_at'], name='idx_redemptions_store_created'), Index(fields=['created_at'], name='idx_redemptions_created'), Index(fields=['campaign_id', 'created_at'], name='idx_redemptions_campaign_created'), Index(fields=['staff_id'], name='idx_redemptions_staff'), Index(fields=['voucher_id'], name='idx_redemptions_voucher')], 'pk_attr': 'id', 'table_description': 'One use of a voucher at a store, by a staff member.'},
        ),
        ops.RunPython(per_voucher, per_order),
    ]
