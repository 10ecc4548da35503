"""Assignment against the published vectors (docs/experiments-vectors.json), and the
properties the vectors cannot show: an even split, and stickiness of the bucket."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from services.experiments import assignment

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "experiments-vectors.json"


def _cases() -> list[dict]:
    return json.loads(VECTORS.read_text())["cases"]


def test_there_are_at_least_fifty_vectors_with_an_arm() -> None:
    cases = _cases()
    assert len(cases) >= 50
    assert sum(c["arm"] is not None for c in cases) >= 50


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"{c['salt']}-{c['customer_id']}")
def test_vector(case: dict) -> None:
    assert assignment.layer_bucket_of(case["layer"], case["customer_id"]) == case["layer_bucket"]
    assert assignment.bucket_of(case["salt"], case["bucket_version"], case["customer_id"]) == case["bucket"]
    assert assignment.bucket_counts(case["weights"]) == case["bucket_counts"]
    arm = assignment.assign(
        salt=case["salt"], bucket_version=case["bucket_version"], customer_id=case["customer_id"],
        weights=case["weights"], layer=case["layer"], traffic=tuple(case["traffic"]),
    )  # fmt: skip
    assert arm == case["arm"]


def test_bucket_counts_sum_to_ten_thousand_and_follow_the_weights() -> None:
    assert assignment.bucket_counts([1, 1, 1]) == [3334, 3333, 3333]
    assert assignment.bucket_counts([90, 10]) == [9000, 1000]
    assert assignment.bucket_counts([1, 9999]) == [1, 9999]
    for weights in ([7, 3, 1], [1, 2, 3, 4, 5], [3333, 3333, 3334]):
        assert sum(assignment.bucket_counts(weights)) == assignment.BUCKETS
    with pytest.raises(ValueError):
        assignment.bucket_counts([1, 0])


def test_the_split_follows_the_weights() -> None:
    counts = assignment.bucket_counts([50, 30, 20])
    seen = Counter(assignment.arm_of(assignment.bucket_of("s", 1, c), counts) for c in range(1, 30_001))
    for arm, share in enumerate((0.5, 0.3, 0.2)):
        assert abs(seen[arm] / 30_000 - share) < 0.015, seen


def test_the_bucket_depends_on_salt_and_version_only_through_the_hash() -> None:
    # Same inputs, same bucket (sticky); another version reshuffles (used only for
    # customers not yet exposed, whose arm is recorded at first exposure).
    assert assignment.bucket_of("abc", 1, 42) == assignment.bucket_of("abc", 1, 42)
    moved = sum(assignment.bucket_of("abc", 1, c) != assignment.bucket_of("abc", 2, c) for c in range(1, 1001))
    assert moved > 990
