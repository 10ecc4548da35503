"""What every domain shares: errors, pagination, SQL dialects, the audit log, Redis
script calls, schema bases and the acting ``Principal``."""
