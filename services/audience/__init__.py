"""Who a campaign targets: audience rules and segments, compiled to SQL and Redis sets,
and the per-customer facts they are evaluated on."""
