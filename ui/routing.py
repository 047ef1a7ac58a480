"""Make sure a page runs inside `app.py`'s navigation.

Streamlit keeps a legacy mode for apps with a `pages/` folder: until the main script has called
`st.navigation` once in the server process, a request for `/<page>` (a shared link opened on a
freshly started server) runs `pages/<page>.py` on its own, without `app.py`'s page config and
navigation. `require_router()`, called first by every page, switches that mode off and reruns,
so the request goes through `app.py` like every other.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def require_router() -> None:
    """Rerun through `app.py` when Streamlit ran this page by the legacy `pages/` discovery."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
