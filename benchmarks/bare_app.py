"""The baseline for first paint: a bare Streamlit page with only a title and a chat input."""

import streamlit as st

st.title("AI-CHAT")
st.chat_input("Ask about your documents")
