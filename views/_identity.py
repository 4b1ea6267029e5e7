"""The anonymous workspace key: remembered by this browser in a cookie, and shown as a private link to copy.

Without a login, a person's workspace is an unguessable token (``?u=`` in the address). The browser keeps it in
the first-party cookie ``tls_u`` (SameSite=Lax, path /, kept as long as the retention rule keeps unused work), so
opening the plain address again comes back to the same workspace. Streamlit reads cookies from the request that
opened the session (``st.context.cookies``); the cookie is written by a two-line script in ``st.html``.
With ``st.login`` configured the identity is the e-mail, and none of this is used.
"""
from __future__ import annotations

import streamlit as st

from tlcore import settings
from tlcore import workspace as ws
from views._pages import STEPS

COOKIE = "tls_u"
COOKIE_MAX_DAYS = 400                 # browsers cap a cookie's life at 400 days
PAGE_PATHS = tuple(p.key for p in STEPS)   # the addresses of the step pages


def cookie_token() -> str | None:
    """The workspace token this browser remembered, if it is a valid one."""
    try:
        value = st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 - no browser behind this session (tests, bare mode)
        return None
    return value if ws.is_owner_token(value) else None


def cookie_max_age() -> int:
    """Seconds the browser keeps the key: the retention period (work unused that long is deleted anyway)."""
    days = settings.RETENTION_DAYS if settings.RETENTION_DAYS > 0 else COOKIE_MAX_DAYS
    return int(min(days, COOKIE_MAX_DAYS) * 86400)


def cookie_script(token: str) -> str:
    """The HTML that makes the browser remember ``token`` (a validated token: letters, digits, ``-`` and ``_``)."""
    if not ws.is_owner_token(token):
        raise ValueError("not an owner token")
    return ("<script>(function(){var secure = location.protocol === 'https:' ? '; Secure' : '';"
            f"document.cookie = '{COOKIE}={token}; Max-Age={cookie_max_age()}; Path=/; SameSite=Lax' + secure;"
            "})();</script>")


def remember(token: str | None) -> None:
    """Write the cookie in this browser (idempotent; drawn on every run, the script runs once per page load)."""
    if ws.is_owner_token(token):
        st.html(cookie_script(token), unsafe_allow_javascript=True, width="content")


def private_link(token: str) -> str:
    """The address that opens this workspace from any browser."""
    try:
        base = st.context.url or ""
    except Exception:  # noqa: BLE001
        base = ""
    base = base.split("?")[0].split("#")[0].rstrip("/")
    if not base.startswith(("http://", "https://")):
        base = ""
    head, _, last = base.rpartition("/")
    if last in PAGE_PATHS and "//" in head:
        base = head                                # the studio's address, not the page it was copied on
    return f"{base}/?u={token}" if base else f"?u={token}"


def retention_sentence() -> str:
    days = settings.RETENTION_DAYS
    if days <= 0:
        return "This server keeps your work until you delete it."
    return (f"Work you leave unused for {days} day{'s' if days != 1 else ''} is deleted from this server "
            "(datasets, runs and models).")


def identity_box(token: str | None, logged_in_as: str | None) -> None:
    """Sidebar: the private link with a copy button, and how long unused work is kept."""
    if logged_in_as:
        st.caption(f"Signed in: your work is kept under your account. {retention_sentence()}")
        return
    if not ws.is_owner_token(token):
        return
    with st.container(key="private_link_box"):
        st.markdown("**Copy my private link**")
        st.code(private_link(token), language=None, wrap_lines=True)
        st.caption("This browser remembers your workspace. To open it on another device, or if you clear this "
                   "browser's cookies, use the link above (the copy button is at its right); anyone with the link "
                   f"can see your work. {retention_sentence()}")
    remember(token)


def login_state() -> tuple[bool, str | None]:
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
    the one this browser remembered (cookie ``tls_u``, see :func:`cookie_token`); a new one for a new visitor."""
    configured, email = login_state()
    if configured and email:
        return ws.owner_id(email=str(email))
    token = st.query_params.get("u")
    if not ws.is_owner_token(token):
        token = st.session_state.get("owner_token")
    if not ws.is_owner_token(token):
        token = cookie_token()
    if not ws.is_owner_token(token):
        token = ws.new_owner_token()
    st.session_state["owner_token"] = token
    return ws.owner_id(token=token)


def needs_login() -> bool:
    """True when this server has logins and nobody is logged in yet."""
    configured, email = login_state()
    return configured and not email
