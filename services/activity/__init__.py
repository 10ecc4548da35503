"""What happens outside the app: POS and partner events, check-ins, referrals and the
integrations that send them."""
