"""Step 2 · Model: the pretrained backbone, where its weights come from, what to freeze, and the new head."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from views import _charts, _ui
from tlcore import workspace as ws
from tlcore.runs import RunConfig

st.title("2 · Model")
st.caption("A backbone is a network already trained on ImageNet's 1.2 million photos. Smaller backbones train "
           "faster on a laptop; bigger ones are often a little more accurate.")
_ui.flash()
me = st.session_state["owner"]

with st.spinner("Loading the model library (only the first time)…"):
    from tlcore import preview
    from tlcore.backbones import (BACKBONES, DEFAULT_BACKBONE, create_backbone, get_spec, load_custom_backbone,
                                  weights_cached)
    from tlcore.model import LayerInfo, layer_status

DEFAULT_MODEL = {k: v for k, v in RunConfig().to_dict().items() if k in ws.MODEL_KEYS}   # one source of defaults
WEIGHT_SOURCES = {"imagenet": "ImageNet (pretrained)", "file": "My weights file (.h5)",
                  "none": "Random initialisation (no pretraining)"}
FREEZE_MODES = {"all_but_top": "Train only the top N layers", "up_to": "Freeze everything up to a block",
                "none": "Train every layer", "all": "Freeze the whole backbone"}
draft = _ui.draft()
saved = {**DEFAULT_MODEL, **(draft.get("model") or {})}
dataset = _ui.current_dataset()
n_classes = dataset.n_classes if dataset is not None else 3


@st.cache_resource(max_entries=4, show_spinner=False)
def counting_backbone(name: str, size: int | None):
    return preview.counting_backbone(name, size)


@st.cache_resource(max_entries=4, show_spinner=False)
def custom_backbone(path: str):
    return load_custom_backbone(path)


st.subheader("Backbones")
table = pd.DataFrame(preview.backbone_rows())
st.dataframe(table[["backbone", "parameters (M)", "weights (MB)", "input size", "ImageNet top-1 (%)", "speed",
                    "ImageNet weights cached", "note"]], hide_index=True, width="stretch", key="backbone_table",
             column_config={
                 "backbone": st.column_config.TextColumn("Backbone", width=150, pinned=True),
                 "parameters (M)": st.column_config.NumberColumn("Params (M)", width="small",
                                                                 help="Millions of parameters, without the head."),
                 "weights (MB)": st.column_config.NumberColumn("MB", width="small",
                                                               help="Size of the weights file."),
                 "input size": st.column_config.NumberColumn("Input px", width="small",
                                                             help="The image size it was trained on."),
                 "ImageNet top-1 (%)": st.column_config.NumberColumn(
                     "Top-1 %", width="small", help="Its accuracy on ImageNet, as Keras documents it."),
                 "speed": st.column_config.TextColumn("Speed", width="medium", help="On a laptop CPU."),
                 "ImageNet weights cached": st.column_config.CheckboxColumn(
                     "On server", width="small",
                     help="Ticked: the pretrained weights are already on this server, so no download is needed."),
                 "note": st.column_config.TextColumn("Note", width="large")})

names = list(BACKBONES)
_ui.init("backbone_select", saved["backbone"] if saved["backbone"] in names else DEFAULT_BACKBONE)
_ui.init("own_backbone_toggle", bool(saved.get("backbone_file")))
left, right = st.columns(2)
with left:
    own = st.toggle("Use my own .keras backbone", key="own_backbone_toggle",
                    help="Advanced: a network you saved yourself with model.save('name.keras'). It must take one "
                         "image input and must not contain Lambda layers.")
    backbone_file = saved.get("backbone_file") if own else None
    if own:
        up = st.file_uploader("My backbone (.keras)", type=["keras"], key="backbone_upload",
                              help="The file is checked safely: no code inside it is run.")
        if up is not None and st.session_state.get("backbone_upload_done") != up.file_id:
            ok, path = _ui.call("Saving the backbone", ws.save_upload, me, up.name, up.getvalue(), kinds=(".keras",))
            if ok and _ui.call("Checking the backbone", custom_backbone, str(path))[0]:
                backbone_file = str(path)
                st.session_state["backbone_upload_done"] = up.file_id
        if backbone_file:
            st.caption("Using your backbone file " + _ui.esc(backbone_file.rsplit("-", 1)[-1]))
    name = st.selectbox("Backbone", names, key="backbone_select", disabled=bool(backbone_file),
                        format_func=lambda n: f"{get_spec(n).title} ({get_spec(n).params / 1e6:.1f} M parameters)",
                        help="MobileNet α=0.25 is tiny and fast: a good first choice on a laptop. EfficientNet B0 is "
                             "a strong all-rounder. ResNet50 and VGG16 are classics but slow without a GPU.")
    spec = get_spec(name)
    sizes = sorted({s for s in (96, 128, 160, 192, 224, 240, 260, 299, 300, spec.default_size) if s >= spec.min_size})
    _ui.init("image_size", saved["image_size"] if saved["image_size"] in sizes else 0)
    if st.session_state["image_size"] not in [0] + sizes:
        st.session_state["image_size"] = 0
    size = st.selectbox("Image size (pixels)", [0] + sizes, key="image_size",
                        format_func=lambda s: f"backbone default ({spec.default_size}×{spec.default_size})" if not s
                        else f"{s}×{s}",
                        help="Images are resized to this square size. Smaller is faster; the default matches the "
                             "pretrained weights best.") or None
with right:
    current_source = "file" if saved["weights"] not in ("imagenet", "none") else saved["weights"]
    _ui.init("weights_source", current_source)
    source = st.radio("Starting weights", list(WEIGHT_SOURCES), key="weights_source",
                      format_func=WEIGHT_SOURCES.get, disabled=bool(backbone_file),
                      help="ImageNet weights are what makes transfer learning work. Random initialisation starts "
                           "from nothing: useful only to compare.")
    weights = source
    if source == "imagenet" and not backbone_file and not weights_cached(name, size):
        st.warning("The ImageNet weights for this backbone are not on this server yet. Training will try to download "
                   "them; if the server is offline the run stops with a message. MobileNet α=0.25 is usually cached.",
                   icon=":material/cloud_download:")
    if source == "file":
        weights = saved["weights"] if current_source == "file" else None
        up = st.file_uploader("Weights file (.h5 or .weights.h5)", type=["h5"], key="weights_upload",
                              help="Weights saved from the same backbone, e.g. with model.save_weights(...).")
        if up is not None and st.session_state.get("weights_upload_done") != (up.file_id, name):
            ok, path = _ui.call("Saving the weights", ws.save_upload, me, up.name, up.getvalue(),
                                kinds=(".h5", ".weights.h5"))
            if ok and _ui.call("Checking the weights", create_backbone, name, str(path), size)[0]:
                weights = str(path)
                st.session_state["weights_upload_done"] = (up.file_id, name)
        if weights:
            st.caption("Using the weights file " + _ui.esc(str(weights).rsplit("-", 1)[-1]))
        else:
            st.info("Upload a weights file; until then the run would start from ImageNet weights.")
            weights = "imagenet"

st.subheader("Which layers learn")
st.caption("Frozen layers keep their pretrained knowledge; trainable layers adapt to your images. These settings "
           "are used by fine-tuning (after the head has trained). Feature extraction always freezes the whole "
           "backbone, and training from scratch always trains everything.")
with st.spinner("Building the backbone to count its layers…"):
    ok, base = _ui.call("Building the backbone", custom_backbone if backbone_file else counting_backbone,
                        *((backbone_file,) if backbone_file else (name, size)))
if ok:
    total_layers = len(base.layers)
    blocks = list(dict.fromkeys(layer["block"] for layer in preview.freeze_view(base, "none")["layers"]))
    _ui.init("freeze_mode", saved["freeze"].get("mode", "all_but_top"))
    cols = st.columns([2, 3])
    mode = cols[0].radio("How much to freeze", list(FREEZE_MODES), key="freeze_mode", format_func=FREEZE_MODES.get,
                         help="Training only the top layers is the usual recipe: the early layers detect edges and "
                              "textures that suit any photo.")
    n, layer = int(saved["freeze"].get("n", 20)), saved["freeze"].get("layer")
    with cols[1]:
        if mode == "all_but_top":
            st.session_state["freeze_top_n"] = min(int(st.session_state.get("freeze_top_n", n)), total_layers)
            n = st.slider("Trainable layers at the top", 0, total_layers, key="freeze_top_n",
                          help="How many of the backbone's last layers may change during fine-tuning.")
        elif mode == "up_to":
            if st.session_state.get("freeze_block") not in blocks:
                st.session_state["freeze_block"] = layer if layer in blocks else blocks[len(blocks) // 2]
            layer = st.selectbox("Freeze everything up to and including", blocks, key="freeze_block",
                                 help="Blocks run from the input (first) to the output (last).")
    _ui.init("head_enabled", bool(saved["head"].get("enabled", True)))
    _ui.init("head_units", int(saved["head"].get("units", 1024)))
    _ui.init("head_dropout", float(saved["head"].get("dropout", 0.2)))
    head = {"enabled": st.session_state["head_enabled"], "units": int(st.session_state["head_units"]),
            "dropout": float(st.session_state["head_dropout"])}
    ok, view = _ui.call("Counting parameters", preview.freeze_view, base, mode, n, layer, n_classes, head)
    if ok:
        s = view["summary"]
        m = st.columns(4)
        m[0].metric("Trainable in the backbone", f"{s['trainable_params']:,}", help="Parameters fine-tuning may change.")
        m[1].metric("Frozen in the backbone", f"{s['frozen_params']:,}",
                    help="Parameters that keep their values, BatchNorm statistics included.")
        m[2].metric("New head", f"{s['head_params']:,}", help="Always trainable: it learns your classes.")
        m[3].metric("Frozen layers", f"{s['frozen_layers']} of {s['total_layers']}",
                    help="Layers your choice freezes, counted from the input, as the slider counts them.")
        kept = (f" {s['batchnorm_kept']} normalisation (BatchNorm) layers among the unfrozen ones stay as they "
                "were: updating them on a few images would undo what the backbone learned (the Keras "
                "transfer-learning guide's rule)." if s.get("batchnorm_kept") else "")
        st.markdown(f"**In short: when fine-tuning, {s['trainable_layers']} layers of the backbone will learn from your images, plus "
                    f"the new head.**{kept}")
        chart_col, list_col = st.columns([3, 2])
        chart_col.plotly_chart(_charts.layer_blocks(view["blocks"]), key="layer_chart", width="stretch")
        with list_col:
            st.markdown("**Layer by layer**")
            rows = pd.DataFrame([{"layer": info["name"], "type": info["type"], "block": info["block"],
                                  "parameters": info["params"],
                                  "trainable": layer_status(LayerInfo(**info), s["frozen_layers"])}
                                 for info in view["layers"]])
            st.dataframe(rows, hide_index=True, width="stretch", height=420, key="layer_table",
                         column_config={"parameters": st.column_config.NumberColumn("Parameters", format="localized"),
                                        "layer": st.column_config.TextColumn("Layer"),
                                        "type": st.column_config.TextColumn("Type"),
                                        "block": st.column_config.TextColumn("Block"),
                                        "trainable": st.column_config.TextColumn("Trainable?")})

st.subheader("The new head")
cols = st.columns(3)
cols[0].toggle("Hidden layer in the head", key="head_enabled",
               help="On: features → a dense layer → your classes. Off: features go straight to your classes (fewer "
                    "parameters, good for very small datasets).")
cols[1].number_input("Units in the hidden layer", 8, 4096, step=8, key="head_units",
                     disabled=not st.session_state["head_enabled"],
                     help="Size of the head's hidden layer. 128 to 1024 is typical; smaller over-fits less.")
cols[2].slider("Dropout", 0.0, 0.8, step=0.05, key="head_dropout", disabled=not st.session_state["head_enabled"],
               help="While training, randomly switches off this share of the head's units so it cannot memorise.")
st.info("**About BatchNorm.** Batch-normalisation layers keep running statistics of the images they saw in "
        "pretraining. The studio always keeps them frozen and in inference mode, even in unfrozen blocks, as the "
        "Keras guide recommends: updating them on a small dataset would wreck what the backbone learned.",
        icon=":material/lightbulb:")

model = {"backbone": name, "backbone_file": backbone_file, "weights": "none" if backbone_file else weights,
         "image_size": size, "freeze": {"mode": st.session_state.get("freeze_mode", "all_but_top"), "n": int(n),
                                        "layer": layer}, "head": head}
if model != draft.get("model"):
    _ui.save_draft(model=model, model_title="my own backbone" if backbone_file else spec.title)
_ui.link("train", "Next: train", icon=":material/arrow_forward:")
