"""Operator settings, read from the environment, with defaults that suit a 2-core laptop."""
from __future__ import annotations

import os
from pathlib import Path

MAX_UPLOAD_MB = int(os.environ.get("TLS_MAX_UPLOAD_MB", "500"))
MAX_FILE_BYTES = 50 * 1024 * 1024          # one image file
MAX_IMAGE_PIXELS = 50_000_000               # a 6000x4000 photo is 24 MP; a 30000x30000 bomb is 900 MP
MAX_ZIP_FILES = int(os.environ.get("TLS_MAX_ZIP_FILES", "20000"))
MAX_ZIP_TOTAL_BYTES = int(os.environ.get("TLS_MAX_ZIP_TOTAL_MB", "2048")) * 1024 * 1024
MAX_ZIP_RATIO = 200                         # uncompressed / compressed, per entry
ZIP_RATIO_MIN_BYTES = 1024 * 1024           # the ratio cap applies to zip entries larger than this
MAX_CSV_BYTES = 20 * 1024 * 1024            # a label CSV file
NORMALISE_MAX_SIDE = 1024                   # larger photos are downscaled once at import
RETENTION_DAYS = int(os.environ.get("TLS_RETENTION_DAYS", "14"))


def workspace_dir() -> Path:
    """Where runs and imported datasets live (``TLS_WORKSPACE``, default ``~/.tlstudio``)."""
    path = Path(os.environ.get("TLS_WORKSPACE", Path.home() / ".tlstudio")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_root() -> Path | None:
    """The server folder users may import from (``TLS_DATA_ROOT``); None disables server-folder import."""
    value = os.environ.get("TLS_DATA_ROOT")
    return Path(value).expanduser().resolve() if value else None


def max_concurrent_jobs() -> int:
    """How many runs train at once (``TLS_MAX_JOBS``); the rest wait in a fair FIFO queue."""
    default = max(1, (os.cpu_count() or 2) // 2)
    return max(1, int(os.environ.get("TLS_MAX_JOBS", default)))


def auto_budget_cap() -> float:
    """The most seconds an automatic search may take on this server (``TLS_AUTO_BUDGET_S``; default: no cap)."""
    try:
        return float(os.environ.get("TLS_AUTO_BUDGET_S", "inf"))
    except ValueError:
        return float("inf")


def feature_cache_bytes() -> int:
    """The feature store's bound on disk (``TLS_FEATURE_CACHE_GB``, default 2; 0 turns the store off)."""
    try:
        gigabytes = float(os.environ.get("TLS_FEATURE_CACHE_GB", "2"))
    except ValueError:
        gigabytes = 2.0
    return max(0, int(gigabytes * 1024 ** 3))


def executor_kind() -> str:
    """Where runs train (``TLS_EXECUTOR``): ``process`` (the default: one child process per run), ``thread`` (in
    this process; tests that patch the engine) or ``ray`` (also chosen by setting ``TLS_RAY_ADDRESS``)."""
    kind = os.environ.get("TLS_EXECUTOR", "").strip().lower()
    if not kind:
        return "ray" if ray_address() else "process"
    return kind if kind in ("process", "thread", "ray") else "process"


def ray_address() -> str | None:
    """The Ray cluster runs are sent to (``TLS_RAY_ADDRESS``, e.g. ``ray://head:10001`` or ``auto``); None: here."""
    return os.environ.get("TLS_RAY_ADDRESS") or None


def warm_workers() -> int:
    """Training processes kept started and ready, TensorFlow imported (``TLS_WARM_WORKERS``, default 1)."""
    try:
        return max(0, min(4, int(os.environ.get("TLS_WARM_WORKERS", "1"))))
    except ValueError:
        return 1


def machine_memory_mb() -> int:
    """This machine's memory, or the container's limit when that is lower (cgroup v2 ``memory.max``)."""
    total = (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2 ** 20
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit) // 2 ** 20)
    except OSError:
        pass
    return int(total)


def max_run_memory_mb() -> int:
    """The memory one run's process may use (``TLS_MAX_RUN_MEMORY_MB``; 0 = no cap). The default is a fair
    share: three quarters of the machine divided by the training slots, so the server keeps its quarter."""
    value = os.environ.get("TLS_MAX_RUN_MEMORY_MB")
    if value is not None and value.strip():
        try:
            return max(0, int(float(value)))
        except ValueError:
            pass
    return max(512, machine_memory_mb() * 3 // 4 // max_concurrent_jobs())
