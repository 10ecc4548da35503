"""Routes for other systems (POS, CRM): signed events per integration."""
