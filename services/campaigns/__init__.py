"""What an operator builds: campaigns and their coupons, review, budgets, the
calendar, exclusivity, and the read model (``catalog``) the other domains use."""
