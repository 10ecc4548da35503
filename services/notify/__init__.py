"""WeChat subscribe messages: customers' subscriptions, templates, the outbox and the
rate-limited sender."""
