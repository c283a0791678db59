"""AI-CHAT engine: local retrieval-augmented chat over your documents. Never imports streamlit."""

__version__ = "0.1.0"
