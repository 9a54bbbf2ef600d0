"""The read side's list of detector names is the registered detectors' own."""

from __future__ import annotations

import subprocess
import sys

from readkit import ROOT

from chalicelib.analytics.detector_names import DETECTOR_NAMES
from chalicelib.analytics.detectors import DETECTORS


def test_names_match_the_registered_detectors_in_order() -> None:
    assert tuple(d.name for d in DETECTORS) == DETECTOR_NAMES


def test_the_names_module_loads_no_numpy() -> None:
    code = (
        "import sys; import chalicelib.analytics.detector_names\n"
        "assert 'numpy' not in sys.modules, 'numpy loaded'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1000:]
