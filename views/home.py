"""Home: what transfer learning is, the steps, and one click to try everything on a sample."""
from __future__ import annotations

import streamlit as st

from views import _ui
from views._pages import STEPS
from tlcore import workspace as ws

st.title("Transfer Learning Studio")
st.markdown(
    "**Transfer learning** reuses a network that has already learned to see from millions of photos "
    "(ImageNet) and teaches it your own classes. The pretrained part, the *backbone*, keeps what it knows about "
    "edges, textures and shapes; only a small new *head* has to learn from your images. That is why a few dozen "
    "photos per class and a laptop are enough to train a useful image classifier."
)

st.subheader("The steps")
cols = st.columns(len(STEPS))
for col, step in zip(cols, STEPS):
    with col.container(border=True):
        st.markdown(f"**{step.title}**")
        st.caption(step.blurb)
        _ui.link(step.key, "Open", icon=":material/arrow_forward:")

st.subheader("Start here")
left, right = st.columns(2)
with left.container(border=True):
    st.markdown("**Try it with a sample**")
    st.caption("Generates 120 small pictures of circles, squares and triangles on this machine, picks a small "
               "fast model and a quick strategy, and takes you to the Train page, ready to press Start.")
    sample = st.button("Try it with a sample", key="sample_button", type="primary",
                       help="Fills every step with sensible choices so you can see the whole flow in about a "
                            "minute. Your own data can come later.")
with right.container(border=True):
    st.markdown("**Download a public sample dataset**")
    st.caption("Downloads 3,000 photos of cats and dogs (about 70 MB), the classic transfer-learning example. "
               "Needs an internet connection on the server.")
    public = st.button("Download a public sample dataset", key="public_sample_button",
                       help="The server downloads the photos and imports them as one of your datasets.")

def _load_engine() -> None:
    """Import the training engine here, where the user sees the step, rather than behind the Train page's spinner
    (after a server start it is already being imported in the background; this waits for that)."""
    import tlcore.strategies  # noqa: F401


if sample:
    with st.status("Preparing the sample…", expanded=True) as status:
        ok, result = _ui.call("Preparing the sample", ws.try_sample, st.session_state["owner"],
                              progress=status.write)
        if ok:
            status.write("Loading the training engine (TensorFlow; up to half a minute just after a server "
                         "start)…")
            ok, _ = _ui.call("Loading the training engine", _load_engine)
        status.update(label="The sample is ready: opening the Train page…" if ok else
                      "The sample could not be prepared", state="complete" if ok else "error")
    if ok:
        _ui.go("train")

if public:
    with st.spinner("Downloading the public sample…"):
        ok, info = _ui.call("Downloading the sample", ws.download_public_sample, st.session_state["owner"])
    if ok:
        _ui.save_draft(dataset_id=info.id)
        st.session_state["flash"] = "The public sample is imported: look at it, then go on to the model."
        _ui.go("data")

with st.expander("Good to know"):
    st.markdown(
        "- Everything you import and train is kept on this server under a private link: **bookmark this page** "
        "to come back to your work.\n"
        "- Training runs in the background: you can switch pages, close the tab or refresh, and the run goes on.\n"
        "- Nothing you upload leaves the server, and other people on it cannot see your data unless you share it."
    )
