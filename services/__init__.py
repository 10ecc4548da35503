"""Business rules, one package per domain over ``core``. Nothing here imports ``server`` or
``handlers``: services see no request objects (an import-linter contract keeps it so)."""
