"""Data rights (PIPL / GDPR): a customer's data export, the erasure of their personal
data, the access-token gate of erased customers, and retention purges.

Above every other domain: it reads and erases the rows they own. The names below are the
package's public face; its modules import each other directly."""

from services.privacy.catalog import HOLDINGS, PERSONAL_AUDIT_KEYS, Holding, customer_columns, unlisted
from services.privacy.erase import TOMBSTONE_PREFIX, ErasureReport, erase_customer
from services.privacy.export import open_export
from services.privacy.gate import ERASED_KEY, ErasedCustomers
from services.privacy.retention import PurgeReport, RetentionPolicy, purge

__all__ = [
    "ERASED_KEY",
    "HOLDINGS",
    "PERSONAL_AUDIT_KEYS",
    "TOMBSTONE_PREFIX",
    "ErasedCustomers",
    "ErasureReport",
    "Holding",
    "PurgeReport",
    "RetentionPolicy",
    "customer_columns",
    "erase_customer",
    "open_export",
    "purge",
    "unlisted",
]
