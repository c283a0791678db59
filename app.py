"""AI-CHAT Streamlit UI — placeholder until the UI issue lands; `make run` runs the CLI demo meanwhile."""

import streamlit as st

st.title("AI-CHAT")
st.info("The chat UI is being built. Meanwhile use the CLI: `python -m rag ingest FOLDER` and "
        "`python -m rag ask \"QUESTION\"`.")
