"""`python -m ui.launch [streamlit options]`: `streamlit run app.py`, with the engine made first.

The engine is the page's own (ui.resources.get_engine, a process-wide st.cache_resource), so the
API (API_PORT) serves from the moment the server starts, not from the first page view. Without
API_PORT this is exactly `streamlit run app.py`. `make run` and the container images start this.
"""

from __future__ import annotations

import logging
import sys

from rag import PROJECT_ROOT, RagError

from .resources import get_engine

log = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    from streamlit.web import cli

    try:
        get_engine()
    except RagError as exc:  # the page shows it too, with the fix
        print(f"error: {exc}", file=sys.stderr)
    cli.main(["run", str(PROJECT_ROOT / "app.py"), *argv], prog_name="streamlit")


if __name__ == "__main__":
    main(sys.argv[1:])
