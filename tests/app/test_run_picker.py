"""The run pickers' choice: a run whose label changed while it was shown (training → done) is still found, and a
value that names no run (or two) changes nothing, so the address never holds a label instead of a run id."""
from __future__ import annotations

import pytest

from views._ui import option_id

IDS = ["20261201-220246-f07b96a9d982", "20261201-220101-aa0000793369"]


@pytest.mark.parametrize("value, expected", [
    (IDS[0], IDS[0]),                                                            # the normal case: the id itself
    ("Feature extraction · MobileNet α=0.25 · training · 793369", IDS[1]),       # an old label, the run now done
    ("Few-shot · 1 min 2 s · a9d982", IDS[0]),
    ("Model · a9d982 · accuracy 97%", IDS[0]),                                   # the Evaluate/Predict picker's label
    ("Feature extraction · training · 123456", None),                            # no such run
    ("a9d982793369", None),                                                      # not a label: no "· " before the id
    ("", None),
    (None, None),
])
def test_option_id(value, expected):
    assert option_id(value, IDS) == expected
