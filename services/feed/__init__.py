"""The personalised discovery feed: the per-process index (index.py), audience
membership (audience_sets.py), the viewer (viewer.py), scoring, ranking and sections
(scoring.py), the runtime that ties them (runtime.py), the cached rankings
(rankings.py), reloaded on catalog changes (catalog_changes.py)."""
