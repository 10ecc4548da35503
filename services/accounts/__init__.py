"""Who can log in: admin and staff accounts, passwords, sessions and tokens, login
throttles, and customers' profiles."""
