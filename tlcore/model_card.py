"""The model card: Markdown prose and tables, never raw JSON.

The card lists only the settings the run's strategy uses: the fine-tuning settings for fine-tuning, the target
images for domain adaptation, the label columns for multi-task learning, and each strategy's options in words,
all read from the strategy's entry in :mod:`tlcore.catalog` (its summary, settings and option labels).
No TensorFlow: the run's files are read through tlcore.artifacts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .artifacts import load_labels, load_run_config, read_json
from .backbones import get_spec
from .catalog import CATALOG, SETTINGS, SUMMARIES
from .catalog import TITLES as STRATEGY_TITLES
from .config import RunConfig
from .errors import TLError
from .run_data import run_dataset

# Live views of the catalog, {strategy: its card clause} and {strategy: the RunConfig settings it reads}.
STRATEGY_SUMMARY = SUMMARIES
STRATEGY_FIELDS = SETTINGS
UNKNOWN_SETTINGS = ("epochs", "optimizer", "learning_rate", "head", "augment")   # a strategy the catalog lacks
OPTIMIZERS = {"adam": "Adam", "rmsprop": "RMSprop", "sgd": "SGD with momentum 0.9"}
AUGMENTATIONS = {"flip": "horizontal flips", "rotation": "rotation", "zoom": "zoom", "translation": "shifts",
                 "contrast": "contrast", "brightness": "brightness"}


# -- the card -------------------------------------------------------------------------------------------------
def _counts(run_dir: Path) -> dict[str, dict[str, int]] | None:
    report = read_json(run_dir / "data_report.json")
    if report and isinstance(report.get("counts"), dict):
        return report["counts"]
    try:
        dataset = run_dataset(run_dir)
    except TLError:
        return None
    return {split: dataset.counts(split) for split in ("train", "val", "test")}


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows])


def _plain(value: Any) -> str:
    """A setting's value in words: yes/no, numbers without noise, lists and mappings as text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(_plain, value)) or "none"
    return "automatic" if value in (None, "auto") else str(value)


def _freeze_text(freeze: dict) -> str:
    mode, n, layer = freeze.get("mode", "all_but_top"), freeze.get("n", 20), freeze.get("layer")
    text = {"none": "every layer of the backbone", "all": "none (the whole backbone stayed frozen)",
            "all_but_top": f"the top {n} layers of the backbone", "first_n": f"all but the first {n} layers",
            "up_to": f"the layers after {layer}"}.get(mode, _plain(freeze))
    return text + ("" if mode == "all" else "; BatchNorm layers stay frozen, so their ImageNet statistics are kept")


def _head_text(head: dict) -> str:
    if not head.get("enabled", True):
        return "one softmax layer on the backbone's pooled features"
    return (f"pooled features → a dense layer of {head.get('units', 1024)} units (ReLU) → dropout "
            f"{_plain(float(head.get('dropout', 0.2)))} → softmax")


def _augment_text(augment: dict) -> str:
    if not augment.get("enabled"):
        return "off"
    on = [label for key, label in AUGMENTATIONS.items() if augment.get(key, True)]
    return "on: " + (", ".join(on) or "no transforms chosen")


def _data_text(ref: str | None) -> str:
    if not ref:
        return "none"
    if ref.startswith("dataset:"):
        return f"the imported dataset {ref.split(':', 1)[1]}"
    return Path(ref).name or ref


def _options_used(config) -> tuple[set[str], list[tuple[str, str]]]:
    """The settings the run's strategy reads (its catalog settings, plus those its on/off options add when on) and
    its options in words (label, option name), in catalog order; options that apply only with an on/off option
    that is off are left out."""
    found = CATALOG.get(config.strategy)
    if found is None:
        return set(UNKNOWN_SETTINGS), []
    schema = found.options.schema()
    on = {info.name for info in schema if bool(config.options.get(info.name))}
    used = set(found.settings).union(*(info.adds_settings for info in schema if info.name in on))
    labels = [(info.label, info.name) for info in schema if info.label and not info.only_with]
    labels += [(info.label, info.name) for info in schema if info.label and info.only_with in on]
    return used, labels


def setting_rows(config) -> list[tuple[str, str]]:
    """(setting, value in words) for the settings the run's strategy uses, in a sensible order."""
    used, labels = _options_used(config)
    fine = "fine_tune_epochs" in used                    # two phases: the head, then the backbone's top layers
    per_task = "tasks" in getattr(CATALOG.get(config.strategy), "produces", ())
    rows: list[tuple[str, str]] = []
    if "epochs" in used:
        label = "Epochs of the head (frozen backbone)" if fine else "Epochs (at most)"
        rows.append((label, str(config.epochs)))
    if fine:
        rows.append(("Epochs of fine-tuning", str(config.fine_tune_epochs)))
    rows.append(("Batch size", str(config.batch_size)))
    if "optimizer" in used:
        rows.append(("Optimiser", OPTIMIZERS.get(config.optimizer, config.optimizer)))
        rows.append(("Learning rate" + (" of the head" if fine else ""), f"{config.learning_rate:g}"))
    if fine:
        rows.append(("Learning rate of fine-tuning", f"{config.fine_tune_learning_rate:g}"))
        rows.append(("Layers trained in fine-tuning", _freeze_text(config.freeze)))
    if "head" in used:
        rows.append(("Head" + (" (one per label column)" if per_task else ""), _head_text(config.head)))
    if "augment" in used:
        rows.append(("Augmentation", _augment_text(config.augment)))
    if "class_weights" in used:
        rows.append(("Rarer classes weighted up", _plain(bool(config.class_weights))))
    if "early_stopping" in used:
        rows.append(("Early stopping", f"after {config.early_stopping} epochs without a better validation loss"
                     if config.early_stopping else "off"))
    if "target_data" in used:
        rows.append(("Unlabelled target images", _data_text(config.target_data)))
    if "label_columns" in used:
        rows.append(("Label columns", _plain(list(config.label_columns))))
    rows += [(label, _plain(config.options[key])) for label, key in labels if key in config.options]
    rows.append(("Random seed", str(config.seed)))
    return rows


def _evaluation_lines(ev: dict | None, n_classes: int) -> list[str]:
    if not ev or not ev.get("n") or ev.get("accuracy") is None:
        return ["No evaluation on held-out images was recorded for this model."]
    split = {"test": "test", "val": "validation"}.get(ev.get("split", "test"), ev.get("split", "test"))
    text = f"On {ev['n']} held-out {split} images its accuracy is {ev['accuracy']:.1%}"
    ci = ev.get("accuracy_ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        text += f" (95% confidence: {ci[0]:.0%} to {ci[1]:.0%})"
    if ev.get("macro_f1") is not None:
        text += f"; its macro F1 score is {ev['macro_f1']:.3f}"
    k = ev.get("top_k")
    if ev.get("top_k_accuracy") is not None and k and int(k) < n_classes:
        text += f", and the right class is among its top {k} answers {ev['top_k_accuracy']:.1%} of the time"
    lines = [text + "."]
    if ev.get("target_accuracy") is not None:
        lines += ["", f"On the target images (their labels used for scoring only) it is right "
                      f"{ev['target_accuracy']:.1%} of the time."]
    rows = [(r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"])
            for r in ev.get("per_class", [])]
    if rows:
        lines += [""] + _table(("class", "precision", "recall", "F1", "images"), rows)
    return lines


def confidence_lines(info: dict | None, ev: dict | None) -> list[str]:
    """The calibration and the "not sure" / "not one of my classes" thresholds, in words."""
    if not info:
        return ["This model's confidence was not calibrated (it was trained before calibration was added)."]
    if info.get("note"):
        lines = [info["note"]]
    else:
        lines = [f"The confidence was calibrated on {info.get('n')} validation images by temperature scaling "
                 f"(T = {info['temperature']:.2f}, kept inside the model and every exported file)."]
    if ev and ev.get("ece") is not None:
        text = f"Its expected calibration error on the test images is {ev['ece']:.3f}"
        if ev.get("ece_uncalibrated") is not None:
            text += f" ({ev['ece_uncalibrated']:.3f} before calibration)"
        lines.append(text + ".")
    if info.get("unsure_below"):
        lines.append(f"An answer below {info['unsure_below']:.0%} confidence is marked \"not sure\": above it, "
                     f"{info.get('precision_target', 0.95):.0%} of the validation answers were right.")
    if info.get("ood_threshold") is not None:
        lines.append("An image whose features lie farther from every class than 99% of the training images lie "
                     "from their own class is answered \"this does not look like any of your classes\".")
    return [" ".join(lines)]


def parity_lines(parity: dict | None) -> list[str]:
    """The parity matrix of :func:`tlcore.parity.parity_matrix` as Markdown (a sentence, a table with one row per
    format, then the images each flagged format disagrees on), or [] when none was measured."""
    if not parity or not parity.get("rows"):
        return []
    ref = parity.get("reference_accuracy")
    lines = [f"Each exported file was run in its own runtime on the {parity['n']} {parity['split']} images and "
             "compared with the studio's model" + (f" (accuracy {ref:.1%})" if ref is not None else "")
             + ". The web page runs the same model.onnx with onnxruntime-web.", "",
             "| file | runtime | same top class | largest probability difference | accuracy | verdict |",
             "|---|---|---|---|---|---|"]
    for row in parity["rows"]:
        if row.get("error"):
            lines.append(f"| {row['file']} | {row['runtime']} | – | – | – | failed: {_cell(row['error'])} |")
            continue
        acc = "–" if row.get("accuracy") is None else f"{row['accuracy']:.1%}"
        verdict = (f"flagged: differs on {row['disagree']} images (more than {row['flag_at']:.0%})"
                   if row["flagged"] else "agrees")
        lines.append(f"| {row['file']} | {row['runtime']} | {row['agree']:.1%} | {row['max_abs_diff']:.2g} | "
                     f"{acc} | {verdict} |")
    for row in parity["rows"]:
        if row.get("flagged") and row.get("images"):
            lines += ["", f"{row['file']} disagrees on: " + ", ".join(map(_cell, row["images"])) + "."]
    return lines


def model_card(run_dir: str | Path, *, image_size: int | None = None, labels: list[str] | None = None) -> str:
    """A Markdown model card in prose and tables: model, training settings of its strategy, data, evaluation,
    intended use and limitations, how to load."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    labels = labels or load_labels(run_dir)
    size = image_size or config.image_size or 224
    strategy = STRATEGY_TITLES.get(config.strategy, config.strategy)
    backbone = (f"a custom backbone ({Path(config.backbone_file).name})" if config.backbone_file
                else get_spec(config.backbone).title)
    pretrained = getattr(CATALOG.get(config.strategy), "pretrained", True)
    weights = "random initialisation" if not pretrained else {
        "imagenet": "ImageNet pretrained weights", "none": "random initialisation"}.get(
        config.weights, f"weights from the file {Path(config.weights).name}")
    summary = STRATEGY_SUMMARY.get(config.strategy, "")
    lines = [f"# Model card: {config.name or run_dir.name}", "",
             f"An image classifier for {len(labels)} classes, trained with Transfer Learning Studio "
             f"({strategy}) on {backbone}, starting from {weights}" + (f": {summary}." if summary else "."), "",
             "## Model", ""]
    lines += _table(("", ""), [
        ("Backbone", backbone if config.backbone_file else f"{backbone} (`{config.backbone}`)"),
        ("Starting weights", weights),
        ("Strategy", f"{strategy} (`{config.strategy}`)"),
        ("Input", f"RGB pixels 0-255 (float32). The .keras, SavedModel and ONNX files take any image size and "
                  f"resize to {size}×{size} themselves (the ONNX input `image` has a dynamic batch and image "
                  f"size); the .tflite files take one image of shape (1, {size}, {size}, 3), already resized "
                  "(bilinear)."),
        ("Output", "softmax probabilities, one per class, in the order of labels.txt"),
    ])
    lines += ["", "## Training settings", "", f"Only the settings that {strategy} uses:", ""]
    lines += _table(("setting", "value"), [("Image size", f"{size}×{size}"), *setting_rows(config)])
    search = read_json(run_dir / "search.json")
    if search and isinstance(search.get("config"), dict):      # the automatic search: what it chose, and how
        chosen = RunConfig.from_dict(search["config"])
        lines += ["", f"The search tried {len(search.get('trials', []))} settings ({search.get('scoring')}) and "
                      f"kept the best ({search.get('best_score', 0):.1%}). The final model trained with:", ""]
        lines += _table(("setting", "value"), setting_rows(chosen))
    lines += ["", "## Data", ""]
    counts = _counts(run_dir)
    if counts:
        splits = [s for s in ("train", "val", "test") if s in counts]
        names = {"train": "training", "val": "validation", "test": "test"}
        lines.append("Images per class in each split:")
        lines += [""] + _table(("class", *(names[s] for s in splits)),
                               [(c, *(counts[s].get(c, 0) for s in splits)) for c in labels])
    else:
        lines.append("The image counts were not recorded. Classes: " + ", ".join(labels) + ".")
    lines += ["", "## Evaluation", ""] + _evaluation_lines(read_json(run_dir / "evaluation.json"), len(labels))
    lines += ["", "## Confidence", ""] + confidence_lines(read_json(run_dir / "calibration.json"), read_json(
        run_dir / "evaluation.json"))
    lines += ["", "## Parity of the exported files", ""] + (
        parity_lines(read_json(run_dir / "parity.json"))
        or ["The exported files have not been compared with the studio's model yet (the Export page's parity "
            "check, or `python -m tlcore export RUN --format all`)."])
    lines += ["", "## Intended use and limitations", "",
              f"- Meant to sort images into these classes only: {', '.join(labels)}. Any other image still gets one "
              "of them; the studio's own predictions flag images far from every class (see Confidence), but the "
              "exported files return the probabilities alone.",
              "- The metrics hold for images like the training data; other cameras, lighting or backgrounds can "
              "lower accuracy. Check it on your own images before relying on it.",
              "- A small test set gives uncertain metrics. Do not use the model for decisions about people, or "
              "for medical or safety decisions, without a proper validation.", "",
              "## How to load", "", "```python",
              "import keras, numpy as np",
              'model = keras.saving.load_model("model.keras")           # raw RGB pixels 0-255, any size',
              'labels = open("labels.txt", encoding="utf-8").read().splitlines()',
              "probs = model.predict(np.asarray(image, 'float32')[None])[0]",
              "",
              "import tensorflow as tf                                   # SavedModel (TF Serving)",
              'served = tf.saved_model.load("saved_model")              # keep it: it owns the weights',
              "probs = served.serve(tf.constant(batch, tf.float32))",
              "",
              "from ai_edge_litert.interpreter import Interpreter       # or tf.lite.Interpreter",
              'interpreter = Interpreter(model_path="model.tflite")     # or model_float16 / model_int8',
              "interpreter.allocate_tensors()",
              f"x = tf.image.resize(image, ({size}, {size})).numpy()[None].astype('float32')",
              'interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x); interpreter.invoke()',
              'probs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]',
              "",
              "import onnxruntime as ort                                 # ONNX: any size, any batch",
              'session = ort.InferenceSession("model.onnx")',
              'probs = session.run(["probabilities"], dict(image=np.asarray(image, "float32")[None]))[0][0]',
              "```", ""]
    return "\n".join(lines)
