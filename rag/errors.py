"""Errors shown to the user. Each message says what went wrong and what to do about it.

Raise them `from` the library error at the boundary where it is translated; the CLI and the UI
print `str(error)` once and never a traceback.
"""


class RagError(Exception):
    """Base class: the message is a complete, actionable sentence for the user."""


class ConfigError(RagError):
    """A setting (env var) has a bad value."""


class ModelError(RagError):
    """The GGUF model is missing, corrupt, or cannot be loaded."""


class IndexMismatchError(RagError):
    """The index on disk was built with another embedder, dimension or format."""


class IngestError(RagError):
    """One document could not be read; the rest of the batch goes on."""


class IndexWriteError(RagError):
    """A new index version could not be written (disk full, permissions); the last one is intact."""


class BackendDown(RagError):
    """A model server failed before its first token; the next backend in the chain is tried."""


class StreamBroken(RagError):
    """A model server failed after some of the answer arrived; what arrived is shown, never cached."""


class HistoryError(RagError):
    """The conversation history could not be read or written (locked, damaged, disk full); the chat goes on."""
