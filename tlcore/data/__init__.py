"""Importing image datasets safely: a zip, a folder, per-class uploads or a CSV of paths and labels.

Every unusable file is skipped and listed in the report; every usable file is kept. Anything written goes
under ``dest`` with generated names (``dest/files`` for unpacked or uploaded files, ``dest/normalised`` for
re-encoded images, ``dest/dataset.json``). No TensorFlow here.

- :mod:`.dataset`: ``Sample``, ``DataReport``, ``Dataset`` (saved as ``dataset.json``);
- :mod:`.sources`: the entry points (``load_data``, ``from_folder``, ``from_zip``, ``from_files``, ``from_csv``);
- :mod:`.archive`: unpacking a zip safely; :mod:`.csv_table`: reading a CSV of paths and labels;
- :mod:`.build`: classes from the folder layout, decoding, splitting (``resplit``) and the warnings.
"""
from __future__ import annotations

from .build import resplit
from .dataset import SPLITS, DataReport, Dataset, Sample
from .sources import from_csv, from_files, from_folder, from_zip, load_data

__all__ = ["SPLITS", "DataReport", "Dataset", "Sample", "from_csv", "from_files", "from_folder", "from_zip",
           "load_data", "resplit"]
