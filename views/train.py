"""Step 3 · Train: the strategy, the training settings, Start / Stop, and the live curves."""
from __future__ import annotations

import streamlit as st

from views import _compare, _run_view, _ui
from views._strategy_inputs import strategy_inputs
from tlcore import catalog
from tlcore import workspace as ws
from tlcore.progress import duration_text
from tlcore.runs import RunConfig

st.title("3 · Train")
_ui.flash()
me = st.session_state["owner"]
draft = _ui.draft()
dataset = _ui.current_dataset()


def _sample_note_applies(draft: dict, strategy: str | None) -> bool:
    """The sample's note describes its own recipe: show it only while that model, weights and strategy are chosen."""
    sample_model, sample_train, note = ws.sample_settings(True)
    if draft.get("sample_note") != note:     # the from-scratch fallback (its note ends with the reason)
        sample_model, sample_train, _ = ws.sample_settings(False)
    model = draft.get("model") or {}
    return strategy == sample_train["strategy"] and all(model.get(k) == sample_model[k] for k in ("backbone", "weights"))


if (dataset is not None and dataset.kind == "sample"
        and _sample_note_applies(draft, st.session_state.get("strategy", (draft.get("train") or {}).get("strategy")))):
    st.info(draft["sample_note"], icon=":material/science:")

with st.spinner("Loading the training library (only the first time)…"):
    import tlcore.strategies  # noqa: F401 - warms the training engine; the choices come from the catalog

DEFAULTS = {k: v for k, v in RunConfig().to_dict().items() if k in ws.TRAIN_KEYS}   # help texts quote these
D = RunConfig()
OPTIMIZERS = {"adam": "Adam", "rmsprop": "RMSprop", "sgd": "SGD (with momentum)"}
saved = {**DEFAULTS, **(draft.get("train") or {})}
LEARNING_RATES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]

if dataset is None:
    st.info("Choose or import a dataset first.", icon=":material/arrow_back:")
    _ui.link("data", "Go to 1 · Data", icon=":material/photo_library:")
else:
    weights = (draft.get("model") or {}).get("weights", D.weights)
    weights = {"none": "random (no pretraining)", "imagenet": "ImageNet"}.get(weights, "your file")
    chosen = catalog.CATALOG.get(st.session_state.get("strategy", (draft.get("train") or {}).get("strategy", D.strategy)))
    if chosen is not None and not chosen.pretrained:          # e.g. training from scratch ignores the weights
        weights = f"random ({chosen.title.lower()})"
    st.text(f"Dataset: {dataset.name} ({dataset.n_images} images, {dataset.n_classes} classes) · "
            f"Model: {draft.get('model_title') or 'MobileNet α=0.25 (default)'} · Weights: {weights}")

    st.subheader("Strategy")
    names = list(catalog.CATALOG)
    _ui.init("strategy", saved["strategy"] if saved["strategy"] in names else names[0])
    if st.session_state["strategy"] not in names:
        st.session_state["strategy"] = names[0]
    strategy = st.radio("How to train", names, key="strategy", horizontal=True,
                        format_func=catalog.TITLES.__getitem__,
                        help="Recommended (automatic) tries settings for you and keeps the best. Feature extraction "
                             "is the fastest with the settings you choose. Fine-tuning adds a second, slower phase "
                             "that often gains a few points. From scratch shows what pretraining is worth.")
    entry = catalog.entry(strategy)
    st.info(entry.description, icon=":material/menu_book:")

    extra = strategy_inputs(strategy, me, dataset, saved)

    st.subheader("Settings")
    searched = "search" in entry.produces          # the automatic search chooses these itself
    if searched:
        from tlcore.settings import auto_budget_cap

        cap = auto_budget_cap()
        st.caption("The search chooses the epochs, learning rate, optimiser and class balancing itself: those "
                   "settings are not used. Set how long it may search above."
                   + (f" This server lets a search take at most {cap:g} seconds." if cap != float("inf") else ""))
    for key in ("epochs", "fine_tune_epochs", "batch_size", "learning_rate", "fine_tune_learning_rate", "optimizer",
                "class_weights", "early_stopping", "seed"):
        _ui.init(key, saved[key])
    _ui.init("augment", bool((saved.get("augment") or {}).get("enabled")))
    for key, options in (("batch_size", [4, 8, 16, 32, 64, 128]), ("learning_rate", LEARNING_RATES),
                         ("fine_tune_learning_rate", LEARNING_RATES)):
        if st.session_state[key] not in options:
            st.session_state[key] = min(options, key=lambda o: abs(o - float(st.session_state[key])))
    c = st.columns(4)
    c[0].number_input("Epochs", 1, 500, key="epochs", disabled=searched,
                      help=f"How many times the model sees every training image. {D.epochs} (the default) is plenty "
                           "for feature extraction.")
    c[1].number_input("Fine-tuning epochs", 0, 500, key="fine_tune_epochs",
                      disabled="fine_tune_epochs" not in entry.settings,
                      help="Fine-tuning only: extra epochs after unfreezing the top of the backbone "
                           f"({D.fine_tune_epochs} by default).")
    c[2].select_slider("Batch size", [4, 8, 16, 32, 64, 128], key="batch_size",
                       help=f"Images per training step. Smaller uses less memory and suits small datasets; "
                            f"{D.batch_size} is the default (the sample uses 16 for its few images).")
    c[3].select_slider("Learning rate", LEARNING_RATES, key="learning_rate", format_func=lambda v: f"{v:g}", disabled=searched,
                       help=f"How big each learning step is. {D.learning_rate:g} (the default) suits the new head; too "
                            "high makes the loss jump.")
    c = st.columns(4)
    c[0].toggle("Augmentation", key="augment",
                help="Shows the model flipped, rotated and zoomed copies of the images: helps with few photos. "
                     "See the preview on the Data page.")
    c[1].toggle("Balance classes", key="class_weights", disabled=searched,
                help="Gives images of small classes more weight, so the model does not just favour the big class.")
    c[2].number_input("Early stopping (epochs)", 0, 50, key="early_stopping", disabled=searched,
                      help="Stop when the validation loss has not improved for this many epochs and keep the best "
                           f"model ({D.early_stopping} by default). 0 turns it off.")
    c[3].number_input("Seed", 0, 99999, key="seed",
                      help="The same seed and settings give the same split order and starting weights.")
    with st.expander("Advanced"):
        a = st.columns(2)
        a[0].selectbox("Optimizer", list(OPTIMIZERS), key="optimizer", format_func=OPTIMIZERS.get, disabled=searched,
                       help="Adam (the default) is safe. RMSprop is the classic transfer-learning recipe.")
        a[1].select_slider("Fine-tuning learning rate", LEARNING_RATES, key="fine_tune_learning_rate",
                           format_func=lambda v: f"{v:g}", disabled="fine_tune_learning_rate" not in entry.settings,
                           help=f"Much lower than the head's ({D.fine_tune_learning_rate:g} by default), so the "
                                "pretrained features adapt without being destroyed.")

    train = {k: st.session_state[k] for k in ("epochs", "fine_tune_epochs", "batch_size", "learning_rate",
                                              "fine_tune_learning_rate", "optimizer", "class_weights",
                                              "early_stopping", "seed")}
    train.update(strategy=strategy, augment={**(saved.get("augment") or {}), "enabled": st.session_state["augment"]},
                 **extra)
    if any((draft.get("train") or {}).get(k) != v for k, v in train.items()):
        draft = _ui.save_draft(train=train)          # a refresh keeps the settings even before Start
    active = [r for r in _ui.store().list(owner=me, include_shared=False) if not r.state.finished]
    if active:
        st.caption(f"{len(active)} runs of yours are waiting or training; stop them or let them finish before "
                   "starting more." if len(active) > 1 else
                   "A run of yours is waiting or training; stop it or let it finish before starting another.")
        if len(active) > 1 and st.button("Stop all my runs", key="stop_all_button", icon=":material/stop_circle:",
                                          help="Stops the run that is training and takes your others out of the "
                                               "queue. Models trained so far are kept."):
            with _ui.guarded("Stopping your runs"):
                _ui.manager().stop_owner(me)
                st.rerun()
    blocked = bool(active) or any(catalog.NEEDS[n].blocks_start and not extra.get(catalog.NEEDS[n].field)
                                  for n in entry.needs)
    if st.button("Start training", key="start_button", type="primary", disabled=blocked,
                 help="Queues the run. It trains in the background: you may switch pages or close the tab."):
        with _ui.guarded("Starting the run"):
            title = f"{entry.title} · {draft.get('model_title') or 'MobileNet α=0.25'}"
            config = ws.config_from_draft(draft, name=title)
            run_id = _ui.manager().submit(config, me)
            _ui.set_current_run(run_id)
            st.rerun()
    _compare.launcher(draft, me, blocked=bool(active))

st.divider()
st.subheader("Run")
runs = _ui.store().list(owner=me)
run_id = _ui.current_run_id()
if not runs or run_id is None:
    st.caption("No runs yet." + (" Press Start training above." if dataset is not None else ""))
else:
    ids = [r.id for r in runs]
    if run_id not in ids:
        ids.insert(0, run_id)
    labels = {r.id: f"{r.name}{_ui.dataset_suffix(r.id)} · {_ui.state_text(r.state.value)}"
              + (f" · {duration_text(r.duration)}" if r.state.finished else "") + f" · {r.id[-6:]}" for r in runs}
    st.session_state["run_select"] = run_id
    st.selectbox("Show run", ids, key="run_select", format_func=lambda i: labels.get(i, i),
                 on_change=_ui.choose_run, args=("run_select", ids),
                 help="Your runs, newest first. The page's address keeps the run, so a refresh or a second tab shows "
                      "the same one.")
    _run_view.show(run_id)
