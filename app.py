"""AI-CHAT — the Streamlit face of the engine. Thin: widgets and session state; rag/ does the work.

The title and chat input are drawn before anything else is imported: the first paint of a cold
server waits for nothing of ours (~0.1 s of imports came after it). The engine (shared by every
browser session through st.cache_resource) starts loading its parts in background threads at the
end of the first run (see resources.start_loading), so the page is there at once.
No torch, sentence_transformers, llama_cpp or faiss import here.
"""

import streamlit as st

# a Material icon: an emoji icon loads Streamlit's emoji catalogue (~50 ms) before the first paint
st.set_page_config(page_title="AI-CHAT", page_icon=":material/forum:", layout="wide")
st.title("AI-CHAT")
st.caption("Chat with your documents — private, on this machine.")
question = st.chat_input("Ask about your documents")

from ui import account, chat, conversations, documents, panel, resources  # noqa: E402 (after the first paint)

engine = resources.engine_or_stop()
try:
    viewer = account.gate(engine)  # AUTH=local/oidc: the sign-in form until signed in (st.stop() there)
    with st.sidebar:
        panel.render_load_states(engine)
        history_box = st.container()  # filled after the chat, so an exchange saved just now is listed
        documents.render(engine, viewer)
        panel.render_memory_panel(engine)
    chat.render(engine, question, viewer)
    with history_box:
        conversations.render(engine, viewer)
finally:
    resources.start_loading(engine)  # after the page is drawn, signed in or not; a no-op on later runs
