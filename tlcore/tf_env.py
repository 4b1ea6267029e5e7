"""Quiet TensorFlow start-up. Import this module before tensorflow or keras anywhere in tlcore."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

__all__ = ["tf", "keras"]
