"""Home page, identity in the URL, the sample button, the public sample when offline, and the start-up cost."""
from __future__ import annotations

import subprocess
import sys

from _apptools import ROOT, new_app, no_crash

from tlcore import dataset_imports
from tlcore import workspace as ws


def test_home_renders_with_a_private_token():
    at = new_app().run()
    no_crash(at)
    assert {b.key for b in at.button} >= {"sample_button", "public_sample_button"}
    token = at.query_params["u"]
    assert ws.is_owner_token(token)
    assert any("Your progress" in m.value for m in at.sidebar.markdown)
    # A refresh (a new session with the same URL) keeps the same owner; a forged token is replaced.
    again = new_app({"u": token}).run()
    assert again.session_state["owner"] == "u:" + token
    forged = new_app({"u": "../../x"}).run()
    assert forged.query_params["u"] != "../../x" and ws.is_owner_token(forged.query_params["u"])


def test_home_does_not_import_tensorflow():
    code = (
        "import os, sys; os.environ['TLS_WARM_TF'] = '0'\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(ROOT / 'app.py')!r}, default_timeout=30).run()\n"
        "assert not at.exception, at.exception\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_public_sample_offline_shows_a_plain_sentence(monkeypatch):
    monkeypatch.setattr(dataset_imports, "PUBLIC_SAMPLE_URL", "http://127.0.0.1:9/nothing.zip")
    at = new_app().run()
    at.button(key="public_sample_button").click().run()
    no_crash(at)
    assert len(at.error) == 1 and "offline" in at.error[0].value and "built\\-in sample" in at.error[0].value


def test_sample_button_fills_every_step_and_lands_on_train():
    at = new_app().run()
    at.button(key="sample_button").click().run(timeout=120)
    no_crash(at)
    assert at.title[0].value == "3 · Train"
    assert at.button(key="start_button") is not None and not at.button(key="start_button").disabled
    owner = at.session_state["owner"]
    draft = ws.load_draft(owner)
    assert draft["dataset_id"] and draft["model"]["backbone"] == "mobilenet_025"
    assert draft["train"]["strategy"] in ("feature_extraction", "scratch")
    info = ws.get_dataset(owner, draft["dataset_id"])
    assert info.kind == "sample" and info.n_classes == 3
    assert any("sample" in i.value for i in at.info)
    # The sidebar now shows the data and model steps as done, and the URL still has the owner token.
    strip = " ".join(m.value for m in at.sidebar.markdown)
    assert "Synthetic shapes" in strip and at.query_params["u"]


def test_logged_in_user_is_the_owner_and_logged_out_sees_login():
    at = new_app()
    at.user = {"is_logged_in": True, "email": "Teacher@School.org", "name": "T"}
    at.run()
    no_crash(at)
    assert at.session_state["owner"] == "user:teacher@school.org" and "u" not in at.query_params
    out = new_app()
    out.user = {"is_logged_in": False}
    out.run()
    no_crash(out)
    assert out.button(key="login_button") is not None and "owner" not in out.session_state
