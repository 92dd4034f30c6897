"""What other apps may ask of the access review (re-exported by audit.services).

Why a separate module: audit.services is the chain writer's home (engineer C's); review
queries are read-only and change for different reasons.
"""

from __future__ import annotations

from kenshin.audit import review


def open_review_task_count() -> int:
    """Number of review tasks waiting for a 課長 (for the home page and the menu)."""
    return review.open_task_count()


def anomaly_counts(
    start, end, *, threshold: int = review.DEFAULT_BURST_THRESHOLD
) -> dict[str, int]:
    """Count of each anomaly report over [start, end] (Japanese dates), for a summary or a CLI."""
    period = review.Period(start, end)
    return {r.key: r.count for r in review.anomalies(period, threshold=threshold, limit=0)}
