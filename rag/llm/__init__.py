"""Who writes the answer: the local llama.cpp model, OpenAI-compatible servers, and the chain that tries them."""
