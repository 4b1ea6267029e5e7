"""The strategy catalog: what every strategy is, needs, produces and accepts, as plain data (no TensorFlow).

Pages, comparisons, results, the model card and the CLI read it; :mod:`tlcore.strategies` builds its registry
from it, importing an implementation only when it is used. Adding a strategy is one module with a class that
has ``fit(ctx) -> TrainResult`` (optionally ``save_extra`` and ``evaluate``) plus one :class:`StrategyEntry`
here (or :func:`register` at run time).
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Iterator, Mapping

from .errors import ConfigError

RunConfig = Any    # a tlcore.config.RunConfig; config sits above the catalog (it reads the option schemas)


@dataclass(frozen=True)
class Need:
    """An input a strategy needs besides labelled images: the RunConfig field that holds it, what is missing and
    how to give it (in words), and whether the Train page holds Start until it is given."""

    field: str
    what: str
    how: str
    blocks_start: bool = False


NEEDS = {
    "target_images": Need("target_data", "needs unlabelled target images", "and pick the target images", True),
    "label_columns": Need("label_columns", "needs a dataset with extra label columns", "(with a CSV dataset)"),
}
# What a strategy may produce: the model's outputs and what its evaluation adds.
OUTPUTS = {
    "classes": "class probabilities, one per class (labels.json)",
    "tasks": "one answer per label column (tasks.json); the evaluation has a report per column",
    "target_scores": "the evaluation scores the target images too, against a source-only model",
    "episodes": "the evaluation adds N-way K-shot episode accuracy",
    "prototypes": "prototypes.npz and embedding.keras: classes can be added later without retraining",
    "search": "search.json (every setting tried, its score and time) and best_config.json (the winner as a plain "
              "configuration: replay it with train --config)",
}


def option(default: Any, help: str, *, label: str = "", page: tuple[str, str] | None = None,
           choices: tuple | None = None, only_with: str | None = None, adds_settings: tuple[str, ...] = ()) -> Any:
    """One strategy option: its default, help text, its words on the model card (``label``), and, when the Train
    page shows it, (widget key, widget label) as ``page``. ``only_with`` names the on/off option it applies with
    (the card lists it only when that one is on); ``adds_settings`` are the RunConfig settings the strategy reads
    too when this on/off option is on."""
    meta = {"help": help, "label": label, "page": page, "choices": choices, "only_with": only_with,
            "adds_settings": tuple(adds_settings)}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionInfo:
    name: str
    type: str
    default: Any
    help: str
    label: str
    page: tuple[str, str] | None
    choices: tuple | None
    only_with: str | None = None
    adds_settings: tuple[str, ...] = ()


_COERCE: dict[str, Callable[[Any], Any]] = {"bool": bool, "int": int, "float": float, "str": str}


@dataclass
class Options:
    """A strategy's options; subclasses add typed fields made with :func:`option`."""

    @classmethod
    def schema(cls) -> list[OptionInfo]:
        """Every option: name, type, default, help and where it is shown."""
        out = []
        for f in fields(cls):
            default = f.default if f.default is not MISSING else f.default_factory()   # type: ignore[misc]
            out.append(OptionInfo(f.name, str(f.type), default, f.metadata["help"], f.metadata["label"],
                                  f.metadata["page"], f.metadata["choices"], f.metadata.get("only_with"),
                                  f.metadata.get("adds_settings", ())))
        return out

    @classmethod
    def parse(cls, raw: dict | None) -> "Options":
        """Typed options from a config's ``options`` (missing ones take their defaults; keys the strategy does not
        know are left alone); ConfigError naming the option for a value of the wrong kind."""
        raw = raw or {}
        values = {}
        for f in fields(cls):
            if f.name not in raw:
                continue
            value, kind = raw[f.name], str(f.type)
            try:
                if kind.startswith("dict"):
                    value = dict(value or {})
                elif kind in _COERCE:
                    value = _COERCE[kind](value)
            except (TypeError, ValueError):
                raise ConfigError(f"The option '{f.name}' must be {_KIND_WORDS.get(kind, kind)}; "
                                  f"it is {value!r}.") from None
            values[f.name] = value
        options = cls(**values)
        options.check()
        return options

    def check(self) -> None:
        """Raise ConfigError with the fix for a value out of range (subclasses add their checks)."""


_KIND_WORDS = {"int": "a whole number", "float": "a number", "dict[str, float]": "an object of numbers"}


@dataclass
class NoOptions(Options):
    """A strategy with no options of its own."""


@dataclass
class DomainAdaptationOptions(Options):
    method: str = option("self_training", "dann: a domain discriminator pushes the features to look alike (Ganin et al. "
                                 "2016), best for small gaps such as another camera. self_training: each domain's "
                                 "own feature statistics, then rounds of confident pseudo-labels on the target "
                                 "images, best for large gaps such as photos against sketches.",
                         label="Adaptation method", choices=("dann", "self_training"),
                         page=("dann_method", "Adaptation method"))
    rounds: int = option(3, "Self-training: rounds of pseudo-labelling before the final training.",
                         label="Self-training rounds")
    pseudo_share: float = option(0.6, "Self-training: the share of each predicted class's most confident target "
                                      "images used in the last round (the share grows each round).",
                                 label="Share of target images pseudo-labelled")
    baseline: bool = option(True, "Trains the same head without adaptation, so you can see what adaptation gained.",
                            label="Source-only model trained alongside for comparison",
                            page=("dann_baseline", "Also train a source-only model to compare"))
    optimizer: str = option("sgd", "SGD with momentum 0.9, as in the paper (Adam lets the discriminator win).",
                            label="Optimiser of the adaptation", choices=("sgd", "adam", "rmsprop"))
    learning_rate: float = option(0.01, "The starting learning rate μ0.", label="Starting learning rate of the adaptation")
    lr_annealing: bool = option(True, "Lower the learning rate as μ0 / (1 + 10 p)^0.75.",
                                label="Learning rate lowered over time")
    lambda_max: float = option(1.0, "The value the gradient-reversal weight λ ramps up to.",
                               label="Strength of the domain confusion (at most)")
    dropout: float = option(0.5, "Dropout after the adapter (from 0 to below 1).", label="Dropout in the adapter")
    adapter_units: int = option(256, "Width of the adapter layer.", label="Adapter width (units)")
    discriminator_units: int = option(256, "Width of the discriminator's layers.",
                                      label="Domain discriminator width (units)")
    discriminator_lr_multiplier: float = option(1.0, "The discriminator's learning rate relative to μ0.",
                                                label="Discriminator learning rate (times the adapter's)")
    target_labels_for_scoring: bool | str = option(
        "auto", "Score the model on target images in class-named folders: \"auto\", true or false.",
        label="Target labels used for scoring only")

    def check(self) -> None:
        if str(self.method) not in ("dann", "self_training"):
            raise ConfigError("options['method'] for domain adaptation must be dann or self_training.")
        if not 1 <= self.rounds <= 20 or not 0 < self.pseudo_share <= 1:
            raise ConfigError("options['rounds'] must be 1–20 and options['pseudo_share'] above 0 and at most 1.")
        if str(self.optimizer) not in ("sgd", "adam", "rmsprop"):
            raise ConfigError("options['optimizer'] for domain adaptation must be sgd, adam or rmsprop.")
        if not 0 <= self.dropout < 1:
            raise ConfigError("options['dropout'] for domain adaptation must be from 0 to below 1.")


@dataclass
class MultiTaskOptions(Options):
    loss_weights: dict[str, float] = option({}, "How much each label column counts in the loss ({task: weight}, "
                                                "by task name or output key; 1 by default).",
                                            label="Weight of each label column in the loss")


@dataclass
class FewShotOptions(Options):
    projection: bool = option(False, help="Off: prototypes are averages of the frozen backbone's features, with no "
                                     "training. On: a small layer is trained on episodes first, which can separate "
                                     "similar classes better.", label="Learned projection",
                              page=("fewshot_projection", "Learn a projection"),
                              adds_settings=("epochs", "optimizer", "learning_rate"))
    centre: bool = option(True, help="Subtract the training mean before normalising (SimpleShot's CL2N).",
                          label="Embeddings centred on the training mean")
    temperature: float = option(0.1, help="Divides the cosine similarities before the softmax (above 0, at most 10).",
                                label="Temperature of the similarity scores")
    projection_units: int = option(128, help="Width of the learned projection.", label="Projection width (units)",
                                   only_with="projection")
    n_query: int = option(15, help="Query images per class in each episode (test episodes, and training episodes of "
                              "the projection).", label="Query images per class in each test episode")
    eval_episodes: int = option(600, help="Test episodes for the N-way K-shot accuracy.", label="Test episodes")
    n_way: int = option(5, help="Classes per training episode of the projection.",
                        label="Classes per training episode", only_with="projection")
    train_shots: int = option(5, help="Support images per class in a training episode.",
                              label="Photos per class in a training episode", only_with="projection")
    episodes_per_epoch: int = option(50, help="Training episodes per epoch of the projection.",
                                     label="Training episodes per epoch", only_with="projection")

    def check(self) -> None:
        if not 0 < self.temperature <= 10:
            raise ConfigError("The few-shot temperature must be above 0 and at most 10 (0.1 is typical).")


@dataclass
class AutoOptions(Options):
    budget_s: float = option(60.0, "Seconds the search may take beyond the feature pass (the server may cap it: "
                                   "TLS_AUTO_BUDGET_S).", label="Search time budget (seconds)",
                             page=("auto_budget", "Search time (seconds)"))
    max_trials: int = option(40, "The most settings tried.", label="Most settings tried")
    folds: int = option(3, "Folds of the cross-validation used when there are fewer than 50 validation images.",
                        label="Cross-validation folds")
    max_epochs: int = option(40, "The most epochs one trial trains; early stopping usually ends it sooner.",
                             label="Most epochs per trial")

    def check(self) -> None:
        if not 1 <= self.budget_s <= 24 * 3600:
            raise ConfigError("options['budget_s'] must be from 1 second to 24 hours (60 is typical).")
        if not 1 <= self.max_trials <= 1000 or not 2 <= self.folds <= 10 or not 1 <= self.max_epochs <= 1000:
            raise ConfigError("options['max_trials'] must be 1–1000, options['folds'] 2–10 and "
                              "options['max_epochs'] 1–1000.")


def _epochs(config: RunConfig) -> int:
    return config.epochs


_TRANSFER = ("epochs", "optimizer", "learning_rate", "head", "augment", "class_weights", "early_stopping")


@dataclass(frozen=True)
class StrategyEntry:
    """One strategy, described. ``impl`` is "module:Class" (imported when first used) or the class itself."""

    name: str
    title: str
    description: str                              # the Train page's paragraph
    line: str                                     # one line for ``--help``
    summary: str                                  # the model card's clause: what happened in training
    impl: str | type
    options: type[Options] = NoOptions
    needs: tuple[str, ...] = ()                   # keys of NEEDS, besides labelled images
    produces: tuple[str, ...] = ("classes",)      # keys of OUTPUTS
    settings: tuple[str, ...] = _TRANSFER         # the RunConfig settings it reads (besides data, model, seed)
    uses_freeze: bool = False                     # its result depends on the frozen-layer setting
    pretrained: bool = True                       # starts from the chosen weights (False: always random)
    feature_pass: bool = True                     # runs the backbone once over the images to cache features
    epochs: Callable[[RunConfig], int] = _epochs   # the epochs it plans for a config

    @property
    def noun(self) -> str:
        """The title without its parenthesis ("Domain adaptation (DANN)" → "Domain adaptation")."""
        return self.title.split(" (")[0]

    def missing(self, config: RunConfig) -> list[str]:
        """The needs this config does not meet (keys of NEEDS)."""
        return [need for need in self.needs if not getattr(config, NEEDS[need].field)]


CATALOG: dict[str, StrategyEntry] = {}


def register(entry: StrategyEntry) -> StrategyEntry:
    """Add (or replace) a strategy; the pages, comparison and CLI offer it at once."""
    CATALOG[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    CATALOG.pop(name, None)


def entry(name: str) -> StrategyEntry:
    """The entry called ``name``; an unknown name raises ConfigError listing the valid ones."""
    try:
        return CATALOG[name]
    except KeyError:
        raise ConfigError(f"Unknown strategy '{name}'. Choose one of: {', '.join(CATALOG)}.") from None


def planned_epochs(config: RunConfig) -> int:
    """The epochs the config's strategy plans (its own count when the strategy is unknown)."""
    found = CATALOG.get(config.strategy)
    return int(found.epochs(config) if found else config.epochs)


class _Column(Mapping):
    """A live read-only view {name: one attribute of its entry}, in catalog order."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def __getitem__(self, name: str) -> Any:
        return getattr(CATALOG[name], self.attribute)

    def __iter__(self) -> Iterator[str]:
        return iter(list(CATALOG))

    def __len__(self) -> int:
        return len(CATALOG)


TITLES: Mapping[str, str] = _Column("title")
LINES: Mapping[str, str] = _Column("line")
SUMMARIES: Mapping[str, str] = _Column("summary")
SETTINGS: Mapping[str, tuple[str, ...]] = _Column("settings")


def produces(strategy: str | None, output: str) -> bool:
    """Whether the strategy called ``strategy`` produces ``output`` (a key of OUTPUTS); False when it is unknown."""
    found = CATALOG.get(strategy) if strategy else None
    return found is not None and output in found.produces

for _entry in (
    StrategyEntry(
        "auto", "Recommended (automatic)",
        "Tries many settings of the new head for you (its size, dropout, optimiser, learning rate, class weights "
        "and how long to train) on the cached features, within a time budget, and keeps the best. Each image goes "
        "through the backbone once, so the search costs little more than feature extraction. It scores each try "
        "on the validation images, or by cross-validation on the training images when there are few of them; "
        "the test images are never used. The winner is saved as a plain configuration you can replay.",
        "searches the head's settings on cached features, then trains the best (recommended)",
        "an automatic search tried settings of a new head on the frozen backbone's features and the best one "
        "was trained",
        "tlcore.strategies.auto:Auto", options=AutoOptions, settings=(), produces=("classes", "search"),
        epochs=lambda c: c.epochs),
    StrategyEntry(
        "feature_extraction", "Feature extraction",
        "The pretrained backbone stays frozen and only a small new head learns your classes. Each image goes "
        "through the backbone once and its features are cached, so this is the fastest strategy and works well "
        "with a few hundred photos. With augmentation on, a few augmented copies of each training image are "
        "cached too (one more backbone pass per copy), and the head trains on all of them.",
        "frozen backbone, only a new head learns; fastest (default)",
        "the pretrained backbone stayed frozen and only a small new head learned the classes",
        "tlcore.strategies.feature_extraction:FeatureExtraction"),
    StrategyEntry(
        "fine_tune", "Fine-tuning",
        "First the new head trains on the frozen backbone (fast, on cached features). Then the top layers of "
        "the backbone are unfrozen and the whole model trains a little longer at a much lower learning rate, "
        "so the pretrained features adapt to your images without being destroyed. BatchNorm layers stay frozen. "
        "Slower than feature extraction, often a few points more accurate.",
        "the head first, then the backbone's top layers at a low learning rate",
        "a new head learned on the frozen backbone first, then the backbone's top layers trained on at a "
        "low learning rate",
        "tlcore.strategies.fine_tune:FineTune",
        settings=("epochs", "optimizer", "learning_rate", "fine_tune_epochs", "fine_tune_learning_rate", "freeze",
                  "head", "augment", "class_weights", "early_stopping"),
        uses_freeze=True, epochs=lambda c: c.epochs + c.fine_tune_epochs),
    StrategyEntry(
        "scratch", "Training from scratch",
        "The same network starts from random weights and every layer learns from your images alone. With a few "
        "hundred photos it usually does much worse than transfer: run it beside another strategy to see what "
        "the pretrained knowledge is worth.",
        "the same network from random weights; the baseline",
        "the whole network learned from random weights, with no pretrained knowledge",
        "tlcore.strategies.scratch:Scratch", pretrained=False, feature_pass=False),
    StrategyEntry(
        "domain_adaptation", "Domain adaptation",
        "For when your photos (the target) look different from the labelled ones (the source): studio shots vs "
        "phone photos, day vs night, photos vs sketches. Besides the labelled source images it uses unlabelled "
        "target images. By default (self-training) each domain's features are scaled by their own statistics, "
        "then the model labels the target images it is surest of and learns from them too, over a few rounds. "
        "The other method (DANN) trains a domain discriminator that the features learn to fool: it suits small "
        "gaps. A source-only model is trained alongside for comparison.",
        "also learns from unlabelled target images (--target-data)",
        "the classifier learned from labelled source images and adapted to unlabelled target images (by "
        "self-training on its surest target answers, or with a domain discriminator, as the options say)",
        "tlcore.strategies.domain_adaptation:DomainAdaptation", options=DomainAdaptationOptions,
        needs=("target_images",), produces=("classes", "target_scores"), settings=("epochs", "augment", "target_data")),
    StrategyEntry(
        "multitask", "Multi-task learning",
        "Learns several labels of each image at once, such as species and colour, from a CSV with one column "
        "per label. One shared backbone feeds one small head per label, so a prediction answers every question. "
        "A row may leave a label empty: it still teaches the other labels. Loss weights set how much each label "
        "counts.",
        "one head per label column of a CSV (label_columns in --config)",
        "one shared frozen backbone fed one small head per label column",
        "tlcore.strategies.multitask:MultiTask", options=MultiTaskOptions, needs=("label_columns",),
        produces=("classes", "tasks"),
        settings=("epochs", "optimizer", "learning_rate", "head", "augment", "early_stopping", "label_columns")),
    StrategyEntry(
        "few_shot", "Few-shot (prototypes)",
        "For classes with only a handful of photos. Each class is summarised by the average of its images' "
        "embeddings (a prototype), and a new image gets the class whose prototype it most resembles. Nothing "
        "needs training unless you ask for a learned projection, and a new class can be added later from one to "
        "five photos without retraining.",
        "one prototype per class from a handful of photos",
        "each class is the average embedding of its training images (a prototype), and an image gets the class "
        "whose prototype it most resembles",
        "tlcore.strategies.few_shot:FewShot", options=FewShotOptions, produces=("classes", "episodes", "prototypes"),
        settings=(), epochs=lambda c: c.epochs if FewShotOptions.parse(c.options).projection else 1),
):
    register(_entry)
