"""Small numeric helpers on feature vectors, shared by the strategies, the calibration and the data check."""
from __future__ import annotations

import numpy as np


def unit(x: np.ndarray, axis: int = -1, dtype: str = "float32") -> np.ndarray:
    """``x`` scaled to unit length along ``axis`` (rows, by default) in ``dtype``; zero vectors stay zero."""
    x = np.asarray(x, dtype=dtype)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)
