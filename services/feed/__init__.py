"""The personalised discovery feed: the per-process index, scoring, sections and the
cached rankings, reloaded on catalog changes."""
