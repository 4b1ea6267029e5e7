"""A run's events (``events.jsonl``) summarised for display: curves, phase, progress, ETA, outcome.

No streamlit and no TensorFlow: the Train page polls :func:`summarize` once a second, the CLI or a notebook may too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .catalog import CATALOG

PHASE_WORDS = {
    "load": "Loading TensorFlow (only the first run after a server start)",
    "data": "Reading the images",
    "build": "Building the model",
    "features": "Passing the images through the backbone once (cached for the head)",
    "head": "Training the new head",
    "unfreeze": "Unfreezing the top of the backbone",
    "fine-tune": "Fine-tuning the backbone",
    "train": "Training every layer",
    "calibrate": "Calibrating the confidence on the validation images",
    "search": "Trying settings of the head on the cached features",
    "save": "Saving the model",
    "evaluate": "Measuring accuracy on the test images",
}
FINISHED = ("done", "failed", "stopped", "interrupted")
TRAINING_PHASES = ("head", "fine-tune", "train")      # the phases whose progress is counted in epochs
# The stages a run goes through, in order, as the live view lists them (phase → short label).
STAGES = (("load", "Loading TensorFlow"), ("data", "Reading the images"), ("build", "Building the model"),
          ("features", "Computing features"), ("training", "Training"), ("save", "Saving the model"),
          ("evaluate", "Measuring accuracy"))
ETA_MIN_SAMPLES = 5      # batches timed (after the warm-up batch) before a time left is shown
ETA_ALPHA = 0.2          # weight of the newest batch in the moving average of seconds per batch


@dataclass
class RunProgress:
    """What the Train page shows for one run."""

    state: str = "queued"
    phase: str = ""
    phase_text: str = "Waiting to start"
    epochs: list[dict] = field(default_factory=list)   # one row per finished epoch: epoch, phase, loss, accuracy, val_*
    total_epochs: int | None = None
    current_epoch: int | None = None
    batch: int | None = None
    steps: int | None = None
    batch_loss: float | None = None
    features_done: int | None = None
    features_total: int | None = None
    features_reused: int | None = None        # images whose backbone features came from the feature store
    features_images: int | None = None        # images whose features the run needed
    eta: float | None = None
    fraction: float = 0.0
    fine_tune_start: float | None = None     # x position (epoch number) where the fine-tuning phase begins
    warnings: list[str] = field(default_factory=list)
    message: str = ""                         # the outcome's sentence (failed / stopped / interrupted)
    metrics: dict = field(default_factory=dict)
    started: float | None = None
    last_time: float | None = None
    eta_scope: str = "run"                    # "phase": the time left covers this phase only
    phase_batches: int = 0                    # batch events seen in the current phase
    estimating: bool = False                  # training, but the time left is not stable yet
    stages_seen: list[str] = field(default_factory=list)
    trials: list[dict] = field(default_factory=list)     # the automatic search's trials, as they finish
    search: dict | None = None                          # its outcome: best settings, score, epochs, scoring

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def summarize(events: list[dict], expected_epochs: int | None = None) -> RunProgress:
    """Fold a run's events, oldest first, into a :class:`RunProgress`.

    ``expected_epochs`` (from the run's config) gives the progress bar a total before the first epoch ends.
    """
    p = RunProgress(total_epochs=expected_epochs or None)
    for ev in events:
        kind = ev.get("type")
        p.last_time = ev.get("t", p.last_time)
        if kind == "state" and ev.get("state"):
            p.state = ev["state"]
            if p.state == "running" and p.started is None:
                p.started = ev.get("t")
        elif kind == "phase":
            p.phase = ev.get("phase", p.phase)
            _saw(p, p.phase)
            p.phase_text = ev.get("message") or PHASE_WORDS.get(p.phase, p.phase.replace("_", " ").capitalize())
            if p.state == "queued":
                p.state = "running"
            if p.phase in ("fine-tune",) and p.fine_tune_start is None:
                done = p.epochs[-1]["epoch"] if p.epochs else 0
                p.fine_tune_start = done + 0.5
            p.batch = p.steps = None
            p.phase_batches = 0
        elif kind == "progress":
            p.features_done, p.features_total = ev.get("done"), ev.get("total")
            if ev.get("phase") == "features":
                p.phase, p.phase_text = "features", PHASE_WORDS["features"]
                _saw(p, "features")
        elif kind == "features" and ev.get("split") != "prototypes":   # not the calibration's pass
            p.features_reused = (p.features_reused or 0) + int(ev.get("reused") or 0)
            p.features_images = (p.features_images or 0) + int(ev.get("total") or 0)
            _saw(p, "features")
        elif kind == "trial":
            p.trials.append({k: v for k, v in ev.items() if k not in ("type", "t")})
        elif kind == "search_done":
            p.search = {k: ev.get(k) for k in ("best", "score", "epochs", "trials", "scoring")}
        elif kind == "batch":
            p.phase_batches += 1
            p.current_epoch = ev.get("epoch", p.current_epoch)
            p.batch, p.steps = ev.get("batch"), ev.get("steps")
            p.batch_loss = ev.get("loss")
            p.eta = ev.get("eta")
            p.eta_scope = ev.get("eta_scope", "run")
            p.estimating = p.eta is None
            if ev.get("phase"):
                p.phase = ev["phase"]
                p.phase_text = PHASE_WORDS.get(p.phase, p.phase_text)
        elif kind == "epoch":
            row = {k: ev.get(k) for k in ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy",
                                          "seconds")}
            row.update({k: v for k, v in ev.items() if k.endswith("_accuracy") and k not in row})  # multi-task
            p.epochs.append(row)
            p.total_epochs = ev.get("total_epochs", p.total_epochs)
            p.current_epoch = ev.get("epoch")
            p.eta = ev.get("eta")
            p.eta_scope = ev.get("eta_scope", "run")
            p.estimating = p.eta is None and p.current_epoch != p.total_epochs
            p.batch = p.steps = None
            if ev.get("phase") == "fine-tune" and p.fine_tune_start is None:
                p.fine_tune_start = (ev.get("epoch") or 1) - 0.5
        elif kind == "warning" and ev.get("message"):
            if ev["message"] not in p.warnings:
                p.warnings.append(ev["message"])
        elif kind in FINISHED:
            p.state = kind
            p.message = ev.get("message", "")
            p.metrics = ev.get("metrics") or {}
            p.eta = 0.0 if kind == "done" else None
        elif kind == "queued":
            p.state = "queued"
    p.fraction = _fraction(p)
    if p.phase not in TRAINING_PHASES:
        p.estimating = False
    return p


def _saw(p: RunProgress, phase: str) -> None:
    stage = "training" if phase in (*TRAINING_PHASES, "unfreeze") else phase
    if stage not in p.stages_seen:
        p.stages_seen.append(stage)


def _no_feature_pass(strategy: str | None) -> bool:
    """Whether the catalog says this strategy trains on images without a cached backbone pass."""
    found = CATALOG.get(strategy) if strategy else None
    return found is not None and not found.feature_pass


def stages(p: RunProgress, strategy: str | None = None) -> list[tuple[str, str]]:
    """The run's stages as (label, status), status one of "done", "now", "next"; the features stage names its
    count ("Computing features: 40 of 120 batches"). Stages a strategy skips (no feature pass) are left out."""
    seen = set(p.stages_seen)
    skips_features = _no_feature_pass(strategy)
    if skips_features:
        seen.discard("features")
    current = p.stages_seen[-1] if p.stages_seen and not p.finished else None
    order = [key for key, _ in STAGES]
    last_seen = max((order.index(s) for s in seen if s in order), default=-1)
    out = []
    for i, (key, label) in enumerate(STAGES):
        if key == "features" and key not in seen and (last_seen > i or skips_features):
            continue                                   # this strategy trains without a feature pass
        if key == "load" and key not in seen:
            continue                                   # TensorFlow was already loaded
        if key == "features" and p.features_total and key == current:
            label = f"{label}: {p.features_done or 0} of {p.features_total} batches"
        elif key == "features" and p.features_images:
            label = f"{label}: {reuse_text(p)}"
        if key == "training" and key == current and p.current_epoch and p.total_epochs:
            label = f"{label}: epoch {_epoch_now(p)} of {p.total_epochs}"
        status = "now" if key == current else "done" if (key in seen or i < last_seen or p.state == "done") else "next"
        out.append((label, status))
    return out


def reuse_text(p: RunProgress) -> str:
    """How many features came from the feature store: "1,197 of 1,222 features reused" ("" before any)."""
    if not p.features_images:
        return ""
    return f"{p.features_reused or 0:,} of {p.features_images:,} features reused"


def smooth_rate(previous: float | None, sample: float, alpha: float = ETA_ALPHA) -> float:
    """Exponential moving average of seconds per batch: ``sample`` when there is no previous value."""
    if previous is None:
        return float(sample)
    return (1.0 - alpha) * previous + alpha * float(sample)


def eta_estimate(seconds_per_batch: float | None, samples: int, batches_left: float,
                 min_samples: int = ETA_MIN_SAMPLES) -> float | None:
    """Seconds left from the smoothed time per batch; None ("estimating…") until ``min_samples`` batches
    were timed."""
    if seconds_per_batch is None or samples < min_samples:
        return None
    return max(0.0, seconds_per_batch * max(0.0, batches_left))


def _epoch_now(p: RunProgress) -> int:
    """The epoch being trained: the one of the last batch, else the one after the last finished epoch."""
    if p.batch or not p.current_epoch:
        return p.current_epoch or 1
    return min(p.current_epoch + 1, p.total_epochs or p.current_epoch + 1)


def _fraction(p: RunProgress) -> float:
    """Progress of the current phase: the backbone pass while features are computed, else the epochs."""
    if p.state == "done":
        return 1.0
    if p.phase == "features" and p.features_total:
        return max(0.0, min(1.0, (p.features_done or 0) / p.features_total))
    if not p.total_epochs:
        return 0.0
    done = len(p.epochs)
    if p.batch and p.steps:
        done += min(1.0, p.batch / p.steps)
    return max(0.0, min(0.99, done / p.total_epochs))


def eta_text(seconds: float | None) -> str:
    """'about 2 min left' style text; empty when unknown."""
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"about {max(seconds, 1)} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds // 3600} h {round(seconds % 3600 / 60)} min left"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def status_line(p: RunProgress) -> str:
    """One line under the progress bar: what happens now, and how long it should take."""
    if p.state == "queued":
        return "Waiting for a free training slot."
    if p.finished:
        return {"done": "Finished.", "stopped": "Stopped.", "failed": "Failed.", "interrupted": "Interrupted."}[p.state]
    parts = [p.phase_text]
    if p.phase == "features" and p.features_total:
        parts.append(f"batch {p.features_done or 0} of {p.features_total}")
    elif p.phase in TRAINING_PHASES and p.total_epochs:
        parts.append(f"epoch {_epoch_now(p) if p.current_epoch else len(p.epochs) + 1} of {p.total_epochs}")
        if p.batch and p.steps:
            parts.append(f"batch {p.batch} of {p.steps}")
        elif not p.phase_batches:
            parts.append("preparing the first batch (the slowest: TensorFlow builds the training step)")
    elif p.phase in ("save", "evaluate") and p.epochs:
        done = p.epochs[-1]["epoch"]
        parts.append(f"after {done} epoch{'s' if done != 1 else ''}")
    if p.phase in TRAINING_PHASES:
        eta = eta_text(p.eta)
        if eta and p.eta_scope == "phase":
            eta += " in this phase"
        parts.append(eta or "estimating the time left…")
    return " · ".join(parts)


def curves(events_by_run: dict[str, list[dict]]) -> list[dict]:
    """Per-epoch rows of several runs, for overlaid comparison curves: run, epoch, metric, value."""
    rows = []
    for run_id, events in events_by_run.items():
        for row in summarize(events).epochs:
            for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
                if row.get(metric) is not None:
                    rows.append({"run": run_id, "epoch": row["epoch"], "metric": metric, "value": row[metric]})
    return rows
