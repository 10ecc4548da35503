"""HTTP edge only: parse and validate input, check the caller, call a service, shape the answer."""

from __future__ import annotations

from handlers import system
from handlers.admin import auth as admin_auth
from handlers.admin import stores as admin_stores
from handlers.customer import auth as customer_auth
from handlers.customer import me as customer_me
from handlers.staff import auth as staff_auth
from server.routing import RouteTable


def all_routes() -> RouteTable:
    table = RouteTable()
    for module in (system, customer_auth, customer_me, admin_auth, admin_stores, staff_auth):
        table.extend(module.routes)
    return table
