"""Sign-in (AUTH=local or oidc): nothing below the title is drawn, and no document, conversation
or answer is reachable, until the tab is signed in. With AUTH=off there is one user and no form.

AUTH=local: the form checks the password with the engine's accounts (rag/accounts.py); the tab
keeps only a session token, checked on every run, so an expired, signed-out or disabled session
ends at the next click. A successful sign-in starts the tab afresh (its earlier state, and any
token it had, is dropped: no session fixation). The token is also kept in a cookie (SameSite=Strict,
for SESSION_HOURS), so a reload or a new tab of the same browser stays signed in; sign-out clears it.
AUTH=oidc: Streamlit's own st.login against the provider in .streamlit/secrets.toml; admins are the
e-mail addresses in ADMIN_USERS.
"""

from __future__ import annotations

import streamlit as st

from rag import HistoryError, RagError, Viewer

from .text import md_escape

TOKEN = "session_token"
COOKIE = "aichat_session"


def gate(engine) -> Viewer | None:
    """The signed-in viewer (None with AUTH=off); otherwise draws the sign-in and stops the run."""
    mode = engine.settings.auth
    if mode == "off":
        return None
    viewer = _local(engine) if engine.settings.accounts else _oidc(engine)
    with st.sidebar:
        st.caption(f"Signed in as {md_escape(viewer.name)}{' (admin)' if viewer.admin else ''}")
        st.button("Sign out", key="sign-out", on_click=_sign_out, args=(engine,))
    return viewer


def _local(engine) -> Viewer:
    accounts = engine.accounts
    saved = st.context.cookies.get(COOKIE)
    if TOKEN not in st.session_state and isinstance(saved, str) and saved:
        st.session_state[TOKEN] = saved  # a reload or a new tab of a signed-in browser
    _write_cookie(engine)
    try:
        viewer = accounts.session(st.session_state.get(TOKEN))
        if viewer is not None:
            return viewer
        if accounts.count() == 0:
            st.info(
                "Sign-in is on (AUTH=local) and there is no account yet. On the server, create the first admin "
                "with `python -m rag users add NAME --admin`, then sign in here."
            )
            st.stop()
    except HistoryError as exc:
        st.error(f"Sign-in is unavailable: {md_escape(str(exc))}")
        st.stop()
    if st.session_state.get(TOKEN):
        st.warning("Your session has ended; please sign in again.")
    st.session_state[TOKEN] = ""  # signed out in this tab: a stale cookie is not tried again
    with st.form("sign-in"):
        st.subheader("Sign in")
        name = st.text_input("User name", key="sign-in-name", autocomplete="username")
        password = st.text_input("Password", type="password", key="sign-in-password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            token, _ = accounts.sign_in(name, password, client=st.context.ip_address or "")
        except RagError as exc:  # SignInError, or the store is unavailable
            st.error(md_escape(str(exc)))
            st.stop()
        for key in list(st.session_state.keys()):  # a fresh tab: nothing from before the sign-in is kept
            del st.session_state[key]
        st.session_state[TOKEN] = token
        st.session_state["cookie"] = token  # written into the browser by the next run
        st.rerun()
    st.stop()
    raise AssertionError("unreachable")  # st.stop() ends the run


def _sign_out(engine) -> None:
    if engine.accounts is not None:
        try:
            engine.accounts.sign_out(st.session_state.get(TOKEN))
        except HistoryError:
            pass  # the token is dropped below either way
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.session_state[TOKEN] = ""  # not the cookie's token again, in this tab
    st.session_state["cookie"] = ""  # cleared in the browser by the next run
    st.query_params.clear()
    if engine.settings.auth == "oidc":
        st.logout()


def _write_cookie(engine) -> None:
    """Set (or with "" clear) the session cookie in the browser, once, from the run after a sign-in
    or sign-out. The token is only letters, digits, - and _ (secrets.token_urlsafe)."""
    if "cookie" not in st.session_state:
        return
    token = st.session_state.pop("cookie")
    if token and not token.replace("-", "").replace("_", "").isalnum():
        return
    age = int(engine.settings.session_hours * 3600) if token else 0
    secure = "; Secure" if (st.context.url or "").startswith("https:") else ""
    st.html(
        f"<script>document.cookie = '{COOKIE}={token}; Path=/; Max-Age={age}; SameSite=Strict{secure}';</script>",
        unsafe_allow_javascript=True,
    )


def _oidc(engine) -> Viewer:
    try:
        configured = "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets.toml at all (Streamlit raises its own not-found error)
        configured = False
    if not configured:
        st.error(
            "AUTH=oidc needs an [auth] section (redirect_uri, cookie_secret, client_id, client_secret, "
            "server_metadata_url) in .streamlit/secrets.toml: see docs/accounts.md."
        )
        st.stop()
    if not st.user.get("is_logged_in", False):  # absent until a provider has signed the tab in
        st.subheader("Sign in")
        st.button("Sign in with your organisation's account", type="primary", on_click=st.login)
        st.stop()
    who = str(st.user.get("email") or st.user.get("sub") or "")
    if not who:
        st.error("The identity provider sent neither an e-mail address nor a subject; sign-in cannot continue.")
        st.stop()
    return Viewer(who.lower(), who.lower() in engine.settings.admin_users)
