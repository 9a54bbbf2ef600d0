"""The names of the registered detectors, in a module without numpy.

The read side validates ``/alerts?detector=`` against these without importing the detectors
(which need numpy). ``tests/read/test_detector_names.py`` checks they match ``DETECTORS``.
"""

from __future__ import annotations

DETECTOR_NAMES: tuple[str, ...] = (
    "low_iv",
    "rich_premium",
    "earnings_crush",
    "term_kink",
    "skew_anomaly",
    "regime_shift",
    "unusual_activity",
)
