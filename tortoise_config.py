"""Entry for tortoise's own CLI: `tortoise -c tortoise_config.TORTOISE_ORM makemigrations`."""

import os

from server.db import orm_config

TORTOISE_ORM = orm_config(os.environ.get("DATABASE_URL", "sqlite://data/app.sqlite3"))
