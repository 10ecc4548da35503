"""Deterministic, sticky assignment of customers to an experiment's arms.

Pure functions over the standard library only, with no package dependencies, so any
layer (the feed, the journey, a test, another language reproducing
docs/experiments-vectors.json) can compute an assignment. The published algorithm
(docs/experiments.md#assignment):

1. The layer: ``layer_bucket = H("layer:{layer}:{customer_id}")``; a customer takes part
   in an experiment only when ``traffic_lo <= layer_bucket < traffic_hi``. Experiments
   in one layer hold disjoint ranges, so a customer is in at most one of them.
2. The bucket: ``bucket = H("{salt}:{bucket_version}:{customer_id}")``.
3. The arm: the weights become whole bucket counts summing to 10,000
   (``bucket_counts``); the arm is the first whose cumulative count exceeds the bucket.

``H(text)`` is the first 8 bytes of SHA-256 of the UTF-8 text, read as a big-endian
unsigned integer, modulo 10,000.

Stickiness: a customer's arm is recorded at first exposure (services.experiments
.exposure); re-weighting bumps ``bucket_version``, which moves only customers not yet
exposed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

BUCKETS = 10_000


def hash_bucket(text: str) -> int:
    """``H(text)``: a bucket in [0, 10,000)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def bucket_of(salt: str, bucket_version: int, customer_id: int) -> int:
    return hash_bucket(f"{salt}:{bucket_version}:{customer_id}")


def layer_bucket_of(layer: str, customer_id: int) -> int:
    return hash_bucket(f"layer:{layer}:{customer_id}")


def bucket_counts(weights: Sequence[int]) -> list[int]:
    """Whole bucket counts for positive integer weights, summing to 10,000: each arm
    its floor share, then the remainder one bucket at a time to the largest fractional
    parts (ties: the earlier arm). Precondition: weights positive, at most 10,000 arms."""
    total = sum(weights)
    if not weights or any(w <= 0 for w in weights):
        raise ValueError("weights must be positive")
    floors = [BUCKETS * w // total for w in weights]
    remainders = [BUCKETS * w % total for w in weights]
    left = BUCKETS - sum(floors)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        floors[i] += 1
    return floors


def arm_of(bucket: int, counts: Sequence[int]) -> int:
    """The index of the arm whose range holds ``bucket`` (counts from ``bucket_counts``)."""
    edge = 0
    for i, count in enumerate(counts):
        edge += count
        if bucket < edge:
            return i
    raise ValueError(f"bucket {bucket} outside the {sum(counts)} buckets")


def assign(
    *, salt: str, bucket_version: int, customer_id: int, weights: Sequence[int], layer: str, traffic: tuple[int, int]
) -> int | None:
    """The arm index for a customer not yet exposed, or None when the customer falls
    outside the experiment's traffic range in its layer."""
    lo, hi = traffic
    if not lo <= layer_bucket_of(layer, customer_id) < hi:
        return None
    return arm_of(bucket_of(salt, bucket_version, customer_id), bucket_counts(weights))
