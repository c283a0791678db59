"""AI-CHAT — the Streamlit face of the engine. Thin: widgets and session state; rag/ does the work.

The title and chat input are drawn before the engine is even asked for; the engine (shared by
every browser session through st.cache_resource) starts loading its parts in background threads
at the end of the first run (see resources.start_loading), so the page is there at once.
No torch, sentence_transformers, llama_cpp or faiss import here.
"""

import streamlit as st

from ui import chat, conversations, documents, panel, resources

st.set_page_config(page_title="AI-CHAT", page_icon="💬", layout="wide")
st.title("AI-CHAT")
st.caption("Chat with your documents — private, on this machine.")
question = st.chat_input("Ask about your documents")

engine = resources.engine_or_stop()
with st.sidebar:
    panel.render_load_states(engine)
    history_box = st.container()  # filled after the chat, so an exchange saved just now is listed
    documents.render(engine)
    panel.render_memory_panel(engine)
chat.render(engine, question)
with history_box:
    conversations.render(engine)
resources.start_loading(engine)  # after the page is drawn; a no-op on later runs
