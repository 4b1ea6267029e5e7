"""Shared Streamlit helpers: identity, URL state, error display, escaping and the sidebar status strip.

No TensorFlow here (and nothing that imports it at module level): the home page must render at once.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import streamlit as st

from tlcore import housekeeping
from tlcore import workspace as ws
from tlcore.errors import TLError

log = logging.getLogger("tlstudio.ui")

PAGES = {
    "home": "views/home.py", "data": "views/data.py", "model": "views/model.py", "train": "views/train.py",
    "evaluate": "views/evaluate.py", "predict": "views/predict.py", "export": "views/export.py",
}
STEP_TITLES = {"data": "1 · Data", "model": "2 · Model", "train": "3 · Train", "evaluate": "4 · Evaluate",
               "predict": "5 · Predict", "export": "6 · Export"}
STATE_TEXT = {"queued": "waiting", "running": "training"}   # plain words (selectbox options, tables)
STATE_WORDS = {"queued": ":material/hourglass_top: waiting", "running": ":material/directions_run: training",
               "done": ":material/check_circle: done", "failed": ":material/cancel: failed",
               "stopped": ":material/stop_circle: stopped", "interrupted": ":material/warning: interrupted"}
UNEXPECTED = ("{what} did not work because of an unexpected problem on the server. Try again; if it happens "
              "again, tell the person who runs this server.")
_MD = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&^=\"'])")
_PROCESS_START = time.time()          # leftovers older than this belong to a previous server process


# ---------------------------------------------------------------------------------------------- text and errors
def esc(text: Any) -> str:
    """User text made safe for any Streamlit element that renders Markdown: every markup character is escaped,
    so ``<img src=x onerror=alert(1)>`` or ``[link](javascript:...)`` shows as plain text."""
    return _MD.sub(r"\\\1", " ".join(str(text).split()))


def show_error(err: BaseException | str) -> None:
    st.error(esc(err), icon=":material/error:")


@contextmanager
def guarded(what: str = "That") -> Iterator[None]:
    """Run tlcore calls; a TLError shows its own sentence, anything else a plain one (never a traceback)."""
    try:
        yield
    except TLError as err:
        show_error(err)
    except MemoryError:
        show_error("The server ran out of memory; try a smaller backbone, image size or batch size.")
    except Exception:  # noqa: BLE001 - the log keeps the traceback, the user gets a sentence
        log.exception("UI action failed")
        show_error(UNEXPECTED.format(what=what))


def call(what: str, fn, *args, **kwargs) -> tuple[bool, Any]:
    """``fn(*args, **kwargs)`` inside :func:`guarded`; returns (ok, result)."""
    with guarded(what):
        return True, fn(*args, **kwargs)
    return False, None


# ---------------------------------------------------------------------------------------------- identity and URL
def _login() -> tuple[bool, str | None]:
    """(logins configured, email of the logged-in user)."""
    try:
        info = st.user.to_dict()
    except Exception:  # noqa: BLE001 - no auth configured, or an old client
        return False, None
    if "is_logged_in" not in info:
        # Behind a sign-in proxy the operator may map a header to "email" (server.trustedUserHeaders).
        try:
            headers = st.get_option("server.trustedUserHeaders")
        except Exception:  # noqa: BLE001
            headers = None
        if isinstance(headers, dict) and "email" in headers.values() and info.get("email"):
            return True, str(info["email"])
        return False, None
    return True, (info.get("email") if info.get("is_logged_in") else None)


def owner() -> str:
    """The current owner: the login email, else the unguessable token in the URL (``?u=``), this session's, or
    the one this browser remembered (cookie ``tls_u``, see views/_identity.py); a new one for a new visitor."""
    from views import _identity

    configured, email = _login()
    if configured and email:
        return ws.owner_id(email=str(email))
    token = st.query_params.get("u")
    if not ws.is_owner_token(token):
        token = st.session_state.get("owner_token")
    if not ws.is_owner_token(token):
        token = _identity.cookie_token()
    if not ws.is_owner_token(token):
        token = ws.new_owner_token()
    st.session_state["owner_token"] = token
    return ws.owner_id(token=token)


def needs_login() -> bool:
    configured, email = _login()
    return configured and not email


def url_params(run_id: str | None = "current") -> dict:
    """The query parameters every link keeps: ``u`` (anonymous owner) and ``run`` (the current run)."""
    params = {}
    if not _login()[1] and st.session_state.get("owner_token"):
        params["u"] = st.session_state["owner_token"]
    run = current_run_id() if run_id == "current" else run_id
    if run:
        params["run"] = run
    return params


def sync_url() -> None:
    """Write ``u`` and ``run`` back into the URL (navigation clears them), so a refresh keeps both."""
    params = url_params()
    for key, value in params.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value
    if "run" in st.query_params and "run" not in params:
        del st.query_params["run"]                 # a run this person may not see (or that no longer exists)


def current_run_id() -> str | None:
    """The run in the URL (or this session's), if this owner may see it; else the owner's latest run."""
    me = st.session_state.get("owner")
    for candidate in (st.query_params.get("run"), st.session_state.get("run_id")):
        if candidate and visible_run(candidate, me) is not None:
            st.session_state["run_id"] = candidate
            return candidate
    if me:
        runs = store().list(owner=me, include_shared=False)
        if runs:
            st.session_state["run_id"] = runs[0].id
            return runs[0].id
    return None


def option_id(value: str | None, ids: list[str]) -> str | None:
    """The run id a run picker chose. When a run's label changes while it is shown (training → done), the browser
    can send back the old label instead of the id; every label shows the id's last 6 characters as "· abc123"."""
    if value in ids:
        return value
    matches = [i for i in ids if value and re.search(rf"· {re.escape(i[-6:])}\b", str(value))]
    return matches[0] if len(matches) == 1 else None


def choose_run(key: str, ids: list[str]) -> None:
    """A run picker's ``on_change``: make its choice the current run (an unknown value changes nothing)."""
    run_id = option_id(st.session_state.get(key), ids)
    if run_id:
        set_current_run(run_id)


def set_current_run(run_id: str | None) -> None:
    st.session_state["run_id"] = run_id
    if run_id:
        st.query_params["run"] = run_id
    elif "run" in st.query_params:
        del st.query_params["run"]


def go(page: str) -> None:
    """Switch to another step, keeping ``u`` and ``run`` in the URL."""
    st.switch_page(PAGES[page], query_params=url_params())


def link(page: str, label: str, icon: str | None = None, **kw: Any) -> None:
    st.page_link(PAGES[page], label=label, icon=icon, query_params=url_params(), **kw)


# ---------------------------------------------------------------------------------------------- engine access
def manager():
    from tlcore.jobs import get_manager

    return get_manager()


def store():
    return manager().store


def visible_run(run_id: str | None, me: str | None = None):
    """The run's record when ``me`` owns it or it is shared; None otherwise (or when it does not exist)."""
    if not run_id or not re.fullmatch(r"[0-9A-Za-z\-]{6,64}", str(run_id)):
        return None
    me = me or st.session_state.get("owner")
    try:
        record = store().get(run_id)
    except TLError:
        return None
    return record if (record.owner == me or record.shared) else None


def draft() -> dict:
    return ws.load_draft(st.session_state["owner"])


def save_draft(**changes: Any) -> dict:
    """Merge ``changes`` into this owner's draft; a new model choice is noted as made for the current dataset."""
    if "model" in changes and "model_dataset" not in changes:
        changes["model_dataset"] = changes.get("dataset_id") or draft().get("dataset_id")
    return ws.update_draft(st.session_state["owner"], **changes)


def current_dataset() -> ws.DatasetInfo | None:
    dataset_id = draft().get("dataset_id")
    if not dataset_id:
        return None
    try:
        return ws.get_dataset(st.session_state["owner"], dataset_id)
    except TLError:
        return None


# ---------------------------------------------------------------------------------------------- start-up work
_STARTED = threading.Event()
_STOP_WAITING = threading.Event()


def start_background_work() -> None:
    """Once per server process: mark lost runs as interrupted, warm TensorFlow, and apply retention."""
    if _STARTED.is_set() or os.environ.get("TLS_WARM_TF", "1") == "0":
        return
    _STARTED.set()

    def warm() -> None:
        _STOP_WAITING.wait(2.0)                      # let the first page reach the browser before the heavy import
        try:
            manager()                                # recovers interrupted runs, starts the workers
            housekeeping.sweep_leftovers(_PROCESS_START)
            housekeeping.cleanup()
            import tlcore.tf_env  # noqa: F401     # the 4-5 s TensorFlow import, off the page's thread
            import tlcore.backbones  # noqa: F401
            import tlcore.strategies  # noqa: F401
            import tlcore.data  # noqa: F401
        except Exception:  # noqa: BLE001 - warming is an optimisation only
            log.exception("background warm-up failed")

    threading.Thread(target=warm, name="tls-warm-up", daemon=True).start()


# ---------------------------------------------------------------------------------------------- temporary files
def _end_session(folder) -> None:
    try:
        housekeeping.end_session(folder)
    except Exception:  # noqa: BLE001 - runs in Streamlit's teardown; never raise there
        log.exception("removing a session's temporary folder failed")


@st.cache_resource(scope="session", on_release=_end_session, show_spinner=False)
def _session_folder(key: str):
    return housekeeping.session_dir(key)


def session_tmp():
    """This browser session's temporary folder (upload spooling); Streamlit deletes it when the session ends."""
    key = st.session_state.setdefault("session_key", secrets.token_hex(8))
    folder = _session_folder(key)
    folder.mkdir(parents=True, exist_ok=True)             # recreated after a reconnect emptied it
    return folder


# ---------------------------------------------------------------------------------------------- status strip
def status_strip() -> None:
    """Sidebar: which steps are done, what comes next, the current run with its state, and the private link."""
    from views import _sidebar

    _sidebar.draw()


def mark_step(step: str, run_id: str | None) -> None:
    """Record that ``step`` ("evaluate", "predict") was done with run ``run_id`` (the sidebar ticks it)."""
    if not run_id:
        return
    ids = list((draft().get("done_runs") or {}).get(step) or [])
    if run_id not in ids:
        save_draft(done_runs={step: (ids + [run_id])[-100:]})


def note_model_page() -> None:
    """After the Model page ran: the model in the draft is the one chosen for the current dataset."""
    d = draft()
    if d.get("model") and d.get("dataset_id") and d.get("model_dataset") != d["dataset_id"]:
        save_draft(model_dataset=d["dataset_id"])


def run_dataset_name(run_id: str) -> str | None:
    """The name of the dataset a run trained on (None when it is not an imported dataset, or was deleted)."""
    try:
        data = store().config(run_id).data
    except TLError:
        return None
    if ws.dataset_id_of(data):
        return ws.dataset_name(data)
    if not data:
        return None
    return os.path.basename(str(data).rstrip("/\\")) or None


def dataset_suffix(run_id: str) -> str:
    """The text " · on <dataset>" for a run list's label, or "" when the dataset is unknown."""
    name = run_dataset_name(run_id)
    return f" · on {name}" if name else ""


def state_text(state: str) -> str:
    """A run state in plain words ("waiting", "training", "done", ...)."""
    return STATE_TEXT.get(state, state)


def run_label(record, me: str | None = None) -> str:
    """Plain text naming a run in a selectbox: its name, its dataset, accuracy and id suffix."""
    me = me or st.session_state.get("owner")
    acc = record.metrics.get("accuracy")
    text = f"{record.name or record.strategy}{dataset_suffix(record.id)}"
    if acc is not None and record.state.value in ("done", "stopped"):
        text += f" · accuracy {acc:.0%}"
    text += f" · {record.id[-6:]}"
    return text + ("" if record.owner == me else " · shared with you")


def flash() -> None:
    """Show (once) the message a previous page left for this one."""
    message = st.session_state.pop("flash", None)
    if message:
        st.info(esc(message), icon=":material/info:")


def dataset_label(info: ws.DatasetInfo, me: str) -> str:
    """Plain text for a selectbox option (selectbox options are not Markdown)."""
    text = f"{info.name} · {info.n_images} images · {info.n_classes} classes"
    if info.owner != me:
        text += " · shared with you"
    elif info.shared:
        text += " · shared"
    return text


def init(key: str, value: Any) -> None:
    """Give a widget its starting value (from the saved draft) once; the widget then owns it."""
    if key not in st.session_state:
        st.session_state[key] = value


def pick_done_run(key: str, purpose: str):
    """A selectbox of this owner's finished runs that have a model (plus shared ones); returns the record or None.

    Defaults to the current run; choosing another makes it the current run."""
    me = st.session_state["owner"]
    runs = [r for r in store().list(owner=me) if r.state.value in ("done", "stopped")
            and (store().run_dir(r.id) / "model.keras").is_file()]
    if not runs:
        st.info(f"There is no trained model yet to {purpose}: train one first.", icon=":material/arrow_back:")
        link("train", "Go to 3 · Train", icon=":material/model_training:")
        return None
    ids = [r.id for r in runs]
    current = current_run_id()
    st.session_state[key] = current if current in ids else ids[0]
    records = {r.id: r for r in runs}
    st.selectbox("Model (training run)", ids, key=key, format_func=lambda run_id: run_label(records[run_id], me),
                 on_change=choose_run, args=(key, ids),
                 help="Your trained runs, newest first, with the dataset each trained on (and runs a teacher "
                      "shared).")
    from views import _runs_ui

    chosen = records[st.session_state[key]]
    _runs_ui.manage(chosen, key=f"{key}_manage")
    if purpose == "evaluate":
        mark_step("evaluate", chosen.id)
    return records[st.session_state[key]]
