"""The feature store every run shares: a frozen model's outputs for image files, kept on disk by content.

A key is the image file's content hash plus all that changes the output (:func:`model_key`): a fingerprint of the
model's layers and weight values (backbone, weights, random initialisation and its seed, preprocessing, input size),
the stored layer, the storage dtype and the decode pipeline. The same bytes under another name or owner hit the same
entry, which holds nothing its owner did not upload. Entries (``<workspace>/features/<key>/<xx>/<hash>.tlsf``: a
header with shape, dtype and checksum, then the array) are written atomically; a torn or corrupted one is a miss.
Callers wanting the same misses at once compute them once (``fcntl.flock``). Bounded by ``TLS_FEATURE_CACHE_GB``
(default 2; 0 turns it off), least recently used first; ``housekeeping.cleanup`` drops entries unused for the
retention period. No TensorFlow here: callers compute the misses as numpy arrays.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import struct
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import settings

FORMAT = 1
PIPELINE = "tf.io.decode_image(channels=3, first frame) -> tf.image.resize(bilinear) float32 0-255"
SUFFIX = ".tlsf"
_MAGIC = b"TLSFEAT1"
_ALIGN = 64
_MMAP_FROM = 1 << 20            # entries of 1 MB or more are read memory-mapped
_log = logging.getLogger(__name__)

_hashes: dict[tuple[str, int, int], str] = {}
_sizes: dict[str, list] = {}      # store root -> [bytes on disk at the last scan + written since, its time]
_RESCAN_S = 300
_configs: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


# ------------------------------------------------------------------------------------------------ keys
def file_hash(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, remembered by (path, size, mtime_ns) so an unchanged file is read once."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_size, st.st_mtime_ns)
    found = _hashes.get(key)
    if found is None:
        with open(path, "rb") as fh:
            found = hashlib.file_digest(fh, "sha256").hexdigest()
        if len(_hashes) > 500_000:
            _hashes.clear()
        _hashes[key] = found        # a dict assignment is atomic: threads need no lock here
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)


def _layer_config(layer: Any) -> str:
    """A layer's class and config without its name and trainable flag (neither changes an output), as JSON;
    remembered per layer object (a layer's config does not change once built)."""
    found = _configs.get(layer)
    if found is None:
        try:
            config = dict(layer.get_config())
            config.pop("name", None), config.pop("trainable", None)
        except Exception:       # a layer without a serialisable config is known by its class and weights
            config = None
        found = _configs[layer] = json.dumps([type(layer).__name__, _plain(config)], sort_keys=True)
    return found


def _walk(layers: Sequence[Any], skip: Sequence[str]) -> Iterator[Any]:
    """Every leaf layer in order, nested models flattened, InputLayers and the ``skip`` names left out."""
    for layer in layers:
        if layer.name in skip or type(layer).__name__ == "InputLayer":
            continue
        inner = getattr(layer, "layers", None)
        if inner:
            yield from _walk(inner, skip)
        else:
            yield layer


def model_fingerprint(model: Any, skip: Sequence[str] = ("augment",)) -> str:
    """sha256 over the model's leaf layers in order: class, config (names and trainable flags left out) and every
    weight's shape, dtype and bytes. Two builds with the same weights (one weights file, ImageNet, or random
    initialisation from the same seed) give the same fingerprint; anything else gives another. The augmentation
    block is skipped: it is inactive in a clean pass, and augmented copies are keyed by :func:`block_key`."""
    digest = hashlib.sha256()
    for layer in _walk(model.layers, skip):
        digest.update(_layer_config(layer).encode())
        for weight in layer.weights:
            value = np.ascontiguousarray(weight.numpy() if hasattr(weight, "numpy") else np.asarray(weight))
            digest.update(f"{value.dtype}{value.shape}".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()


def _digest(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=repr).encode()).hexdigest()


def model_key(fingerprint: str, *, image_size: int, boundary: str = "pool", dtype: str = "float32",
              extra: dict | None = None) -> str:
    """The key of one model's outputs: ``fingerprint`` (:func:`model_fingerprint` of the model from raw pixels to
    ``boundary``), the input size, the stored layer, the storage dtype, the decode pipeline and ``extra``."""
    return _digest({"format": FORMAT, "pipeline": PIPELINE, "fingerprint": fingerprint, "image_size": int(image_size),
                    "boundary": str(boundary), "dtype": str(np.dtype(dtype)), "extra": extra or {}})


def block_key(key: str, image_hashes: Sequence[str], **fields: Any) -> str:
    """The key of one ordered block of outputs (augmented copies): the model key, the files' content hashes in
    order, and ``fields`` (copies, seed, augmentation settings, batch size, RNG state before the pass…)."""
    return _digest({"key": key, "images": list(image_hashes), "fields": fields})


# ------------------------------------------------------------------------------------------------ entries
def _write_entry(path: Path, array: np.ndarray, meta: dict | None = None) -> None:
    """Write one entry atomically (temporary file in the same folder, then os.replace)."""
    array, meta = np.ascontiguousarray(array), {k: np.asarray(v) for k, v in (meta or {}).items()}
    data = _bytes(array)
    text = json.dumps({"shape": list(array.shape), "dtype": array.dtype.str, "digest": _checksum(data), "meta": {
        k: {"dtype": v.dtype.str, "shape": list(v.shape), "data": v.ravel().tolist()} for k, v in meta.items()}}).encode()
    pad = (-(len(_MAGIC) + 4 + len(text))) % _ALIGN
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(_MAGIC + struct.pack("<I", len(text) + pad) + text + b" " * pad)
            fh.write(data)
        os.replace(tmp, path)
        _touch(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _bytes(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def _checksum(data: np.ndarray) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _touch(path: Path) -> None:
    """Mark a use to the nanosecond (the kernel's own clock is too coarse to order a batch of writes)."""
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now))        # least recently used goes first: a hit counts as a use
    except OSError:
        pass


def _read_entry(path: Path, shape: tuple | None = None) -> tuple[np.ndarray, dict] | None:
    """One entry's array (memory-mapped when large) and meta; None when missing, torn or corrupted."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_MAGIC) + 4)
            if len(head) != len(_MAGIC) + 4 or head[:len(_MAGIC)] != _MAGIC:
                return None
            (size,) = struct.unpack("<I", head[len(_MAGIC):])
            header = json.loads(fh.read(size))
            dtype, item_shape = np.dtype(header["dtype"]), tuple(int(n) for n in header["shape"])
            if shape is not None and item_shape != tuple(shape):
                return None
            offset, nbytes = len(head) + size, int(np.prod(item_shape, dtype=np.int64)) * dtype.itemsize
            if os.fstat(fh.fileno()).st_size != offset + nbytes:
                return None
            if nbytes >= _MMAP_FROM:
                array = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=item_shape)
            else:
                array = np.frombuffer(fh.read(nbytes), dtype=dtype).reshape(item_shape)
        if _checksum(_bytes(array)) != header["digest"]:
            return None
        meta = {k: np.asarray(v["data"], dtype=np.dtype(v["dtype"])).reshape(v["shape"])
                for k, v in header.get("meta", {}).items()}
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None
    _touch(path)
    return array, meta


@dataclass
class Lookup:
    """What a look-up gives: the outputs in order (in the storage dtype), how many came from the store."""

    array: np.ndarray
    reused: int
    total: int
    meta: dict = field(default_factory=dict)


@contextlib.contextmanager
def _locked(path: Path, interrupt: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive ``fcntl.flock`` on a lock file; ``interrupt()`` is called while waiting (it may raise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:           # closing the file releases the lock
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (fcntl.LOCK_NB if interrupt else 0))
                break
            except BlockingIOError:         # held by another run: check for Stop now and then
                interrupt()
                time.sleep(0.05)
        yield


class FeatureStore:
    """Entries under ``root`` (default ``<workspace>/features``), at most ``limit_bytes`` on disk."""

    def __init__(self, root: str | os.PathLike | None = None, limit_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else settings.workspace_dir() / "features"
        self.limit = settings.feature_cache_bytes() if limit_bytes is None else int(limit_bytes)
        self.enabled = self.limit > 0

    def entry_path(self, key: str, name: str) -> Path:
        return self.root / key / name[:2] / f"{name}{SUFFIX}"

    def _lock(self, *parts: str, interrupt: Callable[[], None] | None = None) -> Any:
        return _locked(self.root / ".locks" / f"{_digest({'lock': parts})[:40]}.lock", interrupt)

    def describe(self, key: str, about: dict) -> None:
        """Write ``about.json`` (backbone, weights, boundary… in words) beside a key's entries, once."""
        path = self.root / key / "about.json"
        if self.enabled and not path.exists():
            tmp = path.with_name(f".about.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps(about, indent=1, sort_keys=True, default=str))
                os.replace(tmp, path)
            except OSError:
                pass

    # -- per-image entries ------------------------------------------------------------------------------
    def per_image(self, key: str, paths: Sequence[str], compute: Callable[[list[str]], np.ndarray], *,
                  dtype: str = "float32", shape: tuple | None = None, out: np.ndarray | None = None,
                  interrupt: Callable[[], None] | None = None) -> Lookup:
        """Outputs for ``paths`` in order: every file's entry is looked up, ``compute(missing paths)`` runs once
        for the misses only (one row per path, in order), and they are stored. ``shape``: one row's expected shape
        (an entry of another shape is a miss); ``out``: an array (a memmap, say) to fill instead of a new one.
        The result is in ``dtype``, hits and misses alike; ``interrupt()`` is called while waiting on a lock."""
        paths = [os.fspath(p) for p in paths]
        try:
            hashes = [file_hash(p) for p in paths] if self.enabled and paths else None
        except OSError:         # an unreadable file: let the computation report it as it always has
            hashes = None
        if hashes is None:
            array = np.asarray(compute(paths)).astype(dtype, copy=False)
            if out is not None:
                out[...], array = array, out
            return Lookup(array, 0, len(paths))
        found = self._read_all(key, set(hashes), shape)
        missing = list(dict.fromkeys(h for h in hashes if h not in found))
        computed: set[str] = set()
        if missing:
            with self._lock(key, *sorted(missing), interrupt=interrupt):
                found.update(self._read_all(key, set(missing), shape))    # stored by another run meanwhile?
                still, first = set(missing) - found.keys(), {}
                for h, p in zip(hashes, paths):
                    if h in still:
                        first.setdefault(h, p)
                if first:
                    rows = np.asarray(compute(list(first.values())))
                    if len(rows) != len(first):
                        raise ValueError(f"compute returned {len(rows)} rows for {len(first)} images")
                    rows = rows.astype(dtype, copy=False)
                    found.update(zip(first, rows))
                    computed = set(first)
                    self._store_rows([self.entry_path(key, h) for h in first], rows)
        reused = sum(1 for h in hashes if h not in computed)
        array = np.empty((len(hashes), *np.shape(found[hashes[0]])), dtype) if out is None else out
        for i, h in enumerate(hashes):
            array[i] = found[h]
        return Lookup(array, reused, len(paths))

    def _read_all(self, key: str, wanted: set[str], shape: tuple | None) -> dict[str, np.ndarray]:
        found = {}
        for h in wanted:
            entry = _read_entry(self.entry_path(key, h), shape)
            if entry is not None:
                found[h] = entry[0]
        if shape is None and len(found) > 1:       # entries of one key share a shape: the odd ones are damaged
            common, _ = Counter(a.shape for a in found.values()).most_common(1)[0]
            found = {h: a for h, a in found.items() if a.shape == common}
        return found

    def _store_rows(self, paths: Sequence[Path], rows: Sequence[np.ndarray], meta: dict | None = None) -> None:
        """Write entries, then keep the bound (a full scan only when this process's running total may pass it, or
        every few minutes since other processes write too)."""
        written = 0
        try:
            for path, row in zip(paths, rows):
                written += -(-(row.nbytes + 512) // 4096) * 4096        # about what the entry takes on disk
                _write_entry(path, row, meta)
        except OSError as exc:      # a full or read-only disk: the run goes on without storing
            _log.warning("The feature store could not write under %s: %s", self.root, exc)
        known = _sizes.get(str(self.root))
        if known is None or known[0] + written > self.limit or time.monotonic() - known[1] > _RESCAN_S:
            self.evict()
        else:
            known[0] += written

    # -- ordered blocks (augmented copies) --------------------------------------------------------------
    def block(self, key: str, name: str, compute: Callable[[], tuple[np.ndarray, dict]], *,
              dtype: str = "float32", interrupt: Callable[[], None] | None = None) -> Lookup:
        """One entry ``name`` (a :func:`block_key`) for a whole ordered block: read it (memory-mapped when large)
        or run ``compute() -> (array, meta)`` once and store both; ``meta`` (small arrays, e.g. the RNG state after
        the pass) comes back with a hit too."""
        if not self.enabled:
            array, meta = compute()
            return Lookup(np.asarray(array).astype(dtype, copy=False), 0, len(array), meta)
        path = self.entry_path(key, "blocks-" + name)
        entry = _read_entry(path)
        if entry is None:
            with self._lock(key, name, interrupt=interrupt):
                entry = _read_entry(path)
                if entry is None:
                    array, meta = compute()
                    array = np.asarray(array).astype(dtype, copy=False)
                    self._store_rows([path], [array], meta)
                    return Lookup(array, 0, len(array), meta)
        array, meta = entry
        return Lookup(array, len(array), len(array), meta)

    # -- bounds -----------------------------------------------------------------------------------------
    def entries(self) -> list[tuple[int, int, Path]]:
        """(last use in ns, bytes on disk, path) of every entry."""
        out = []
        for path in self.root.glob(f"[0-9a-f]*/*/*{SUFFIX}"):
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((st.st_mtime_ns, max(st.st_size, st.st_blocks * 512), path))
        return out

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self, limit_bytes: int | None = None) -> int:
        """Delete the least recently used entries until the store is under its bound (down to 90% of it, so the
        next writes do not evict again at once). Returns how many were deleted."""
        limit = self.limit if limit_bytes is None else int(limit_bytes)
        entries = self.entries()
        total, removed, target = sum(size for _, size, _ in entries), 0, int(limit * 0.9)
        for _, size, path in sorted(entries) if total > limit else []:
            if total <= target:
                break
            if _unlink(path):
                total, removed = total - size, removed + 1
        _sizes[str(self.root)] = [total, time.monotonic()]
        return removed

    def cleanup(self, cutoff: float) -> int:
        """Retention: delete entries not used since ``cutoff`` (a time stamp), then enforce the bound, and drop
        the folders and lock files left empty or stale. Returns how many entries were deleted."""
        removed = sum(_unlink(path) for used, _, path in self.entries() if used < cutoff * 1e9) + self.evict()
        for folder in self.root.glob("[0-9a-f]*/*"):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        for folder in self.root.glob("[0-9a-f]*"):
            if folder.is_dir() and all(p.name == "about.json" for p in folder.iterdir()):
                shutil.rmtree(folder, ignore_errors=True)
        for lock in (self.root / ".locks").glob("*.lock"):
            if lock.stat().st_mtime < cutoff:
                _unlink(lock)
        return removed


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except OSError:
        return False


def store_for_run(run_dir: str | os.PathLike | None = None) -> FeatureStore:
    """The store of the workspace a run folder belongs to (``<workspace>/runs/<id>``), else the configured one."""
    if run_dir is not None:
        run_dir = Path(run_dir)
        if run_dir.parent.name == "runs" and (run_dir.parent.parent / "runs.db").exists():
            return FeatureStore(run_dir.parent.parent / "features")
    return FeatureStore()
