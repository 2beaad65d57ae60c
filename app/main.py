"""Entry point of the dashboard: ``fep app`` runs ``streamlit run app/main.py``.

Pages: Runs (list), New run (upload, validate, plan, edit, launch), Progress, Results. The runs folder and the
store come from the environment variables set by ``fep app`` (see :mod:`app.data`).
"""

from __future__ import annotations

import streamlit as st

from app.ui import PAGES
from mlfep_core.runtime import configure_process

configure_process()

st.set_page_config(page_title="mlfep", page_icon="⚗️", layout="wide")

runs_page = st.Page(PAGES["runs"], title="Runs", url_path="runs-list", default=True)


def runs_alias() -> None:
    """``/runs``: the default page is served at ``/``; this hidden page sends ``/runs`` there."""
    st.switch_page(runs_page)


navigation = st.navigation(
    [
        runs_page,
        st.Page(runs_alias, title="Runs", url_path="runs", visibility="hidden"),
        st.Page(PAGES["new"], title="New run", url_path="new"),
        st.Page(PAGES["progress"], title="Progress", url_path="progress"),
        st.Page(PAGES["results"], title="Results", url_path="results"),
    ]
)
navigation.run()
