"""AppTest fixtures: a private workspace per test module (helpers live in _apptools.py)."""
from __future__ import annotations

import os
import pytest


os.environ.setdefault("TLS_WARM_TF", "0")   # no background TensorFlow import while pages are tested


@pytest.fixture(scope="module", autouse=True)
def module_workspace(tmp_path_factory):
    """Each test module gets its own workspace (and so its own run store and job manager)."""
    path = tmp_path_factory.mktemp("ws")
    old = os.environ.get("TLS_WORKSPACE")
    os.environ["TLS_WORKSPACE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TLS_WORKSPACE", None)
    else:
        os.environ["TLS_WORKSPACE"] = old


