"""Child process: one pipeline (ours or LangChain's) on the same files, model, embedder, k and chunking.

Prints JSON: ingest seconds, time to first token, peak RSS. The LangChain pipeline is built the way
popular local-RAG projects build it: LlamaCpp LLM + FAISS vector store + HuggingFaceEmbeddings.
"""

import json
import sys
import time
from pathlib import Path


def ours(corpus: Path, question: str) -> dict:
    from rag.config import Settings
    from rag.engine import Engine
    from rag.events import Done, Token

    engine = Engine(Settings.from_env())
    engine.chain.local.model.get()
    engine.embedder.get()  # both pipelines time ingestion with the embedder already loaded
    began = time.perf_counter()
    engine.ingest([corpus])
    ingest_s = time.perf_counter() - began
    began = time.perf_counter()
    ttft, prompt_tokens = None, 0
    for event in engine.ask(question, wait_for_model=True):
        if isinstance(event, Token) and ttft is None:
            ttft = time.perf_counter() - began
        if isinstance(event, Done):
            prompt_tokens = event.prompt_tokens
    return {"ingest_s": ingest_s, "ttft_s": ttft, "prompt_tokens": prompt_tokens}


def langchain(corpus: Path, question: str) -> dict:
    from langchain_community.llms import LlamaCpp
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.config import Settings
    from rag.embeddings import find_model_dir
    from rag.llm import planner as memory
    from rag.llm.gguf import read_meta

    settings = Settings.from_env()
    plan = memory.plan(read_meta(settings.model_path), settings, memory.probe())
    llm = LlamaCpp(
        model_path=str(settings.model_path),
        n_ctx=plan["n_ctx"],
        n_batch=plan["n_batch"],
        n_threads=plan["n_threads"],
        n_gpu_layers=plan["n_gpu_layers"],
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        streaming=True,
        verbose=False,
    )
    embeddings = HuggingFaceEmbeddings(
        model_name=str(find_model_dir(settings.embed_model)), encode_kwargs={"normalize_embeddings": True}
    )
    began = time.perf_counter()
    # the same chunk size and overlap as ours, in characters
    splitter = RecursiveCharacterTextSplitter(chunk_size=settings.chunk_chars, chunk_overlap=settings.chunk_overlap)
    docs = [Document(page_content=p.read_text(), metadata={"source": p.name}) for p in sorted(corpus.glob("*.md"))]
    store = FAISS.from_documents(splitter.split_documents(docs), embeddings)
    ingest_s = time.perf_counter() - began
    began = time.perf_counter()
    hits = store.similarity_search(question, k=settings.top_k)
    context = "\n\n".join(f"[{i}] {d.page_content}" for i, d in enumerate(hits, 1))
    prompt = f"Answer from the context and cite it.\n\nContext:\n{context}\n\nQuestion: {question}\nAnswer:"
    ttft = None
    for _ in llm.stream(prompt):
        if ttft is None:
            ttft = time.perf_counter() - began
    return {"ingest_s": ingest_s, "ttft_s": ttft, "prompt_tokens": len(llm.client.tokenize(prompt.encode()))}


if __name__ == "__main__":
    which, corpus, question = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    result = (ours if which == "ours" else langchain)(corpus, question)
    from benchmarks.probe_rss import peak_rss

    result["peak_rss"] = peak_rss()
    print(json.dumps(result))
