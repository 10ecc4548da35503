"""What several audiences' handlers share: request facts, the acting principal, shared
schemas, the password login flow and streamed CSV exports."""
