"""What the numbers say: funnels, redemption reports and the view/click tracking
counters in Redis."""
