"""A customer's part in a campaign: joining, progress, rewards, points and exchanging
points for coupons."""
