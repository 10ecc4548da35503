"""Tests of services.feed: the discovery feed, its scoring, cards, rankings and index
updates."""
