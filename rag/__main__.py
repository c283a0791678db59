"""Command line: python -m rag {ingest,ask,status,plan,cache,docs,delete,collections,reindex,chats,users,eval,...}.

Errors print one actionable line (`error: ...`) and exit non-zero; no tracebacks for user errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

from .config import Settings
from .errors import RagError
from .events import Done, Error, Hits, Notice, Status, Token
from .status import DEMO_MODEL_NOTE
from .uploads import printable

MiB = 1024 * 1024


def _engine(start: bool = True):
    from .engine import Engine

    return Engine(Settings.from_env(), start=start)


def cmd_ingest(args) -> int:
    engine = _engine()

    def progress(done: int, total: int, name: str) -> None:
        if name:
            print(f"[{done + 1}/{total}] {printable(name)}", file=sys.stderr)

    report = engine.ingest(args.paths, progress, collection=args.collection, owner=args.owner)
    for r in report.results:
        if r.status == "error":
            print(f"error: {printable(r.message)}", file=sys.stderr)
        elif r.status == "skipped":
            print(f"skipped   {printable(r.message)}")
        else:
            print(f"{r.status:9} {r.chunks:5} chunks  {printable(r.path)}")
    print(f"index {report.version}: {report.chunks_added} chunks added, {len(report.errors)} file(s) failed")
    if note := report.read_note():
        print(note)
    return 1 if report.errors and len(report.errors) == len(report.results) else 0


def _source_line(p) -> str:
    page = f", page {p.page}" if p.page else ""
    return f"[{p.n}] {printable(p.source)}{page} ({p.found_by or f'score {p.score:.3f}'})"


def cmd_ask(args, engine=None) -> int:
    engine = engine or _engine(start=False)  # a cached answer needs none of the heavy parts
    hits: list = []
    done: Done | None = None
    for event in engine.ask(args.question, wait_for_model=not args.no_wait, collections=args.collection):
        if isinstance(event, Hits):
            hits = event.hits
        elif isinstance(event, Token) and not args.json:
            print(event.text, end="", flush=True)
        elif isinstance(event, Status) and not args.json and event.stage == "queued":
            print(f"(queued, {event.position} ahead)", file=sys.stderr)
        elif isinstance(event, Status) and not args.json and event.stage == "failover":
            print(f"({event.detail})", file=sys.stderr)
        elif isinstance(event, Notice) and not args.json:
            print(f"\n({event.text})\n", file=sys.stderr)
        elif isinstance(event, Error):
            print(f"error: {event.message}", file=sys.stderr)
            return 1
        elif isinstance(event, Done):
            done = event
    if done is None:  # the stream ended without an answer (it always yields Done or Error)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    **done.as_dict(),
                    "sources": [
                        {
                            "n": p.n,
                            "source": p.source,
                            "page": p.page,
                            "score": round(p.score, 4),
                            "found_by": p.found_by,
                            "text": p.text,
                            "cited": p.n in done.cited,  # the answer cites it (else only retrieved)
                            # cited by the engine: the model cited nothing, its words are from this one
                            "attributed": p.n == done.extra.get("attributed"),
                        }
                        for p in hits
                    ],
                },
                ensure_ascii=False,
                indent=1,
            )
        )
        return 0
    print()
    if done.extra.get("draft"):  # the text above was the model's draft; the answer check changed it
        print(f"\n({done.reason})\n\n{done.answer}")
    if hits:
        print("\nSources:")
        for p in hits:
            mark = " · the answer's words are from here" if p.n == done.extra.get("attributed") else " · cited"
            print("  " + _source_line(p) + (mark if p.n in done.cited else ""))
    kind = "retrieval only" if done.retrieval_only else f"cache hit ({done.cache})" if done.cache else "cache miss"
    kind += f" · by {done.backend}" if done.backend else ""
    print(
        f"\n{kind} · retrieval {done.retrieval_ms:.0f} ms · total {done.total_ms:.0f} ms"
        + (f" · {done.tokens_per_s:.1f} tok/s · {done.prompt_tokens} prompt tokens" if done.prompt_tokens else "")
        + (f" · {done.reason}" if done.reason and not done.retrieval_only else ""),
        file=sys.stderr,
    )
    return 0


def cmd_status(args) -> int:
    engine = _engine()
    engine.refresh(args.timeout)  # the index and model loaded, every server pinged now
    engine.sample()
    status = engine.status()
    if args.json:
        print(json.dumps(status.as_dict(), indent=1, default=str))
        return 0
    for part in status.parts:
        extra = f" in {part.load_seconds:.2f}s" if part.load_seconds else ""
        print(f"{part.name:9} {part.state}{extra}" + (f": {part.error}" if part.error else ""))
    if status.model and status.model.bundled:
        print(f"model     {DEMO_MODEL_NOTE}")
    if status.model and (lb := status.model.llama_build):
        mismatch = f"; {lb['cpu_mismatch']}" if lb["cpu_mismatch"] else ""
        print(
            f"llama.cpp {lb['mode']} build ({lb['key'] or 'not built by scripts/build_llama.py'}), "
            f"CPU code: {lb['cpu_variant'] or 'not loaded'}{mismatch}"
        )
    for b in status.backends:
        if r := b.remote:
            state = {True: "reachable", False: "unreachable", None: "not contacted"}[r.reachable]
            print(
                f"backend   {b.name}: {state}, breaker {r.breaker}"
                + (f" ({r.last_error})" if r.last_error and not r.reachable else "")
            )
    if i := status.index:
        print(f"index     {i.version}: {i.documents} documents, {i.chunks} chunks")
    c = status.cache
    print(
        f"cache     {c.exact} exact + {c.semantic} semantic hits, {c.miss} misses, "
        f"{c.entries} entries (hit rate {c.hit_rate:.0%})"
    )
    m = status.memory
    print(
        f"memory    RAM {m.ram_available // MiB} MiB free of {m.ram_total // MiB} MiB, "
        f"RSS {m.rss // MiB} MiB, pressure {m.pressure}; " + (m.gpu_note or f"{len(m.gpus)} GPU(s)")
    )
    engine.close()
    return 0


def cmd_plan(args) -> int:
    from .llm import planner
    from .llm.gguf import read_meta

    settings = Settings.from_env()
    if settings.model_path is None:
        raise RagError("no GGUF in models/: place one or set MODEL_PATH to plan for it")
    meta = read_meta(settings.model_path)
    reading = planner.probe()
    plan = planner.plan(meta, settings, reading)
    print(
        f"model    {meta.path} ({meta.file_size / MiB:.0f} MiB, {meta.architecture}, {meta.quantization}, "
        f"{meta.n_layer} layers, {meta.n_head}/{meta.n_head_kv} heads, context {meta.context_length})"
    )
    gpus = ", ".join(f"{g.name} {g.free // MiB}/{g.total // MiB} MiB free" for g in reading.gpus)
    print(
        f"machine  {reading.physical_cores} cores, RAM {reading.ram_available // MiB}/{reading.ram_total // MiB} "
        f"MiB free; {gpus or reading.gpu_note}"
    )
    for name, choice in plan.choices.items():
        cost = f"  [{choice.bytes / MiB:.0f} MiB]" if choice.bytes else ""
        print(f"{name:16} {str(choice.value):>8}  {choice.reason}{cost}")
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_cache(args) -> int:
    from .cache import AnswerCache

    settings = Settings.from_env()
    if args.action == "clear":
        AnswerCache(settings.cache_dir).clear()
        print("answer cache cleared")
        return 0
    if args.action == "warm":
        if not args.file:
            raise RagError("cache warm needs a file of questions, one per line")
        engine = _engine()
        questions = [q.strip() for q in Path(args.file).read_text(encoding="utf-8").splitlines() if q.strip()]
        for question in questions:
            done = [e for e in engine.ask(question, wait_for_model=True) if isinstance(e, (Done, Error))][-1]
            note = (
                done.message
                if isinstance(done, Error)
                else (
                    "already cached"
                    if done.cache
                    else "retrieval only, not cached"
                    if done.retrieval_only
                    else "cached"
                )
            )
            print(f"{note:28} {question}")
        return 0
    print(json.dumps(AnswerCache(settings.cache_dir).stats(), indent=1))
    return 0


def cmd_docs(args) -> int:
    from .index import IndexStore

    store = IndexStore(Settings.from_env().index_dir)
    for doc in store.documents():
        named = f"  [{', '.join(printable(c) for c in doc['collections'])}]" if doc["collections"] else ""
        owner = f"  (owner {printable(doc['owner'])})" if doc["owner"] else ""
        print(f"{doc['doc_id'][:12]}  {doc['chunks']:5} chunks  {printable(doc['source'])}{named}{owner}")
    return 0


def _one_document(store, prefix: str) -> str:
    matches = [d["doc_id"] for d in store.documents() if d["doc_id"].startswith(prefix)]
    if len(matches) != 1:
        raise RagError(f"{len(matches)} documents match {prefix!r}; give a longer id from `python -m rag docs`")
    return matches[0]


def cmd_delete(args) -> int:
    from .index import IndexStore

    store = IndexStore(Settings.from_env().index_dir)
    print(f"deleted; index {store.commit(delete=[_one_document(store, args.doc_id)])}")
    return 0


def cmd_collections(args) -> int:
    """Named collections: list them, or set the ones a document belongs to."""
    from .index import ALL_DOCUMENTS, IndexStore

    store = IndexStore(Settings.from_env().index_dir)
    if args.action == "list":
        print(f"{len(store.documents()):5} document(s)  {ALL_DOCUMENTS}")
        for name, count in store.collections().items():
            print(f"{count:5} document(s)  {printable(name)}")
        return 0
    if not args.doc_id:
        raise RagError("`collections set` needs a document id (from `python -m rag docs`) and the collection names")
    doc_id = _one_document(store, args.doc_id)
    version = store.commit(members={doc_id: args.names})
    named = ", ".join(printable(n) for n in next(d for d in store.documents() if d["doc_id"] == doc_id)["collections"])
    print(f"{doc_id[:12]} is in {named or 'no named collection'} (and {ALL_DOCUMENTS}); index {version}")
    return 0


def cmd_reindex(args) -> int:
    report = _engine().reindex()
    for r in report.errors:
        print(f"error: {r.message}", file=sys.stderr)
    print(f"index {report.version}: rebuilt with {report.chunks_added} chunks")
    return 0


def cmd_demo(args) -> int:
    """Index the bundled guide and answer one question: the first run of the app, on the command line."""
    from .config import SAMPLE_GUIDE

    engine = _engine()
    report = engine.ingest([SAMPLE_GUIDE])
    print(f"indexed the bundled guide (index {report.version}); model: {engine.settings.model_path or 'none'}")
    question = "How do I add documents?"
    print(f"\n> {question}\n")
    return cmd_ask(argparse.Namespace(question=question, json=False, no_wait=False), engine)


def cmd_config(args) -> int:
    """Print the env-var table (the README's copy is checked against it by a test)."""
    from .config import settings_table

    if not args.check:
        print(settings_table())
        return 0
    for name, value in Settings.from_env().shown().items():  # secrets masked
        print(f"{name:16} {value}")
    return 0


def cmd_bench(args) -> int:
    """The benchmark suite (needs `make bench-deps`); the code lives in benchmarks/."""
    try:
        from benchmarks.suite import run
    except ImportError as exc:
        raise RagError(f"the benchmark needs its extra packages ({exc.name} is missing): run `make bench`") from exc
    run(args.quick, Path(args.out), args.preset or None)
    return 0


def cmd_chats(args) -> int:
    """Saved conversations: list [--search], show, export (--format md|json), delete."""
    from .conversations import Conversations
    from .db import open_database
    from .export import to_json, to_markdown

    settings = Settings.from_env()
    if not settings.history:
        raise RagError("the conversation history is off (HISTORY=off): nothing is saved")
    store = Conversations(open_database(settings.database_url, settings.data_dir))
    user = args.user
    if args.action == "list":
        for s in store.list(args.search, limit=args.limit, owner=user):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.updated))
            print(f"{s.id[:8]}  {when}  {s.exchanges:3} exchange(s)  {printable(s.title)}")
        return 0
    if not args.id:
        raise RagError(f"`chats {args.action}` needs a conversation id (the first characters, from `chats list`)")
    conversation_id = store.resolve(args.id, owner=user)
    if args.action == "delete":
        store.delete(conversation_id, owner=user)
        print(f"deleted {conversation_id[:8]}")
        return 0
    conv = store.get(conversation_id, owner=user)
    assert conv is not None
    text = to_json(conv) if args.format == "json" else to_markdown(conv)
    if args.action == "export" and args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:  # to a terminal: a stored question's control characters are shown, not obeyed
        print("\n".join(printable(line) for line in text.split("\n")), end="")
    return 0


def cmd_users(args) -> int:
    """Accounts for AUTH=local: add, passwd, disable, enable, admin, list; share, unshare, shares."""
    import getpass

    from .accounts import Accounts
    from .db import open_database

    settings = Settings.from_env()
    accounts = Accounts(open_database(settings.database_url, settings.data_dir), settings.session_hours)
    if args.action == "list":
        for u in accounts.users():
            last = time.strftime("%Y-%m-%d %H:%M", time.localtime(u.last_sign_in)) if u.last_sign_in else "never"
            state = "disabled" if u.disabled else "active"
            print(f"{printable(u.name):24} {u.role:5} {state:8} last sign-in {last}")
        if not settings.accounts:
            print(f"note: AUTH={settings.auth}: these accounts are used only with AUTH=local", file=sys.stderr)
        return 0
    if not args.name:
        raise RagError(f"`users {args.action}` needs a user name")
    if args.action == "apikey":
        if args.revoke:
            print(f"{accounts.revoke_api_keys(args.name)} API key(s) of {printable(args.name)} revoked")
        else:
            print(accounts.new_api_key(args.name))  # shown once: only its hash is kept
        return 0
    if args.action == "shares":
        for collection, reader in accounts.shares(args.name):
            print(f"{printable(collection)}  ->  {printable(reader)}")
        return 0
    if args.action in ("share", "unshare"):
        if len(args.more) != 2:
            raise RagError(f"`users {args.action} OWNER COLLECTION USER`: name the collection and the user")
        collection, reader = args.more
        (accounts.share if args.action == "share" else accounts.unshare)(args.name, collection, reader)
        verb = "now reads" if args.action == "share" else "no longer reads"
        print(f"{printable(reader)} {verb} {printable(args.name)}'s collection {printable(collection)}")
        return 0
    if args.action in ("add", "passwd"):
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass(f"password for {args.name}: ")
            if getpass.getpass("again: ") != password:
                raise RagError("the two passwords differ; nothing was changed")
        if args.action == "add":
            user = accounts.add(args.name, password, admin=args.admin)
            print(f"added {printable(user.name)} ({user.role})")
        else:
            accounts.set_password(args.name, password)
            print(f"password of {printable(args.name)} changed; its sessions ended")
    elif args.action in ("disable", "enable"):
        accounts.set_disabled(args.name, args.action == "disable")
        print(f"{printable(args.name)} {args.action}d")
    else:  # admin
        accounts.set_role(args.name, not args.revoke)
        print(f"{printable(args.name)} is {'no longer ' if args.revoke else ''}an admin")
    return 0


def cmd_serve(args) -> int:
    """The OpenAI-compatible API alone (no browser UI), on API_PORT or --port."""
    from .api import check_bind, serve
    from .engine import Engine

    settings = Settings.from_env()
    settings = replace(
        settings, api_host=args.host or settings.api_host, api_port=args.port or settings.api_port or 8000
    )
    check_bind(settings)  # before anything loads
    print(f"AI-CHAT API on http://{settings.api_host}:{settings.api_port}/v1 (GET /v1/models)", file=sys.stderr)
    serve(Engine(settings), settings.api_port, settings.api_host)
    return 0


def cmd_make_model(args) -> int:
    from .modelgen import PRESETS, write_model

    path = write_model(args.out, PRESETS[args.preset], seed=args.seed)
    print(f"wrote {path} ({path.stat().st_size / MiB:.1f} MiB, preset {args.preset}, random weights)")
    return 0


def cmd_eval(args) -> int:
    from .embeddings import load_embedder
    from .evaluate import evaluate, table

    settings = Settings.from_env()
    if args.answers:
        return _eval_answers(args, replace(settings, top_k=args.k))
    result = evaluate(
        Path(args.qa),
        load_embedder(settings.embed_model, *settings.embed_prefixes),
        k=args.k,
        chunk_chars=args.chunk_chars or settings.chunk_chars,
        chunk_overlap=settings.chunk_overlap if args.overlap < 0 else args.overlap,
    )
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


def _eval_answers(args, settings: Settings) -> int:
    from .answer_eval import evaluate_answers, table

    def progress(i: int, total: int, scored) -> None:
        mark = "abstained" if scored.abstained else "gold" if scored.contains_gold else "error" if scored.error else "-"
        print(f"[{i + 1}/{total}] {mark:9} {printable(scored.question)[:90]}", file=sys.stderr)

    result = evaluate_answers(Path(args.qa), settings, n=args.n, seed=args.seed, progress=progress)
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
    else:
        print(table(result))
    return 0 if not result["summary"]["errors"] else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rag", description="AI-CHAT: chat with your documents, locally.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("ingest", help="add files or folders to the index")
    s.add_argument("paths", nargs="+")
    s.add_argument("--collection", default="", help="also put the files in this named collection")
    s.add_argument(
        "--owner", default="", help="with AUTH on: the user the documents belong to (default: the shared library)"
    )
    s.set_defaults(func=cmd_ingest)
    s = sub.add_parser("collections", help="list named collections, or set the ones a document is in")
    s.add_argument("action", choices=["list", "set"])
    s.add_argument("doc_id", nargs="?", help="with set: a document id prefix (from `docs`)")
    s.add_argument("names", nargs="*", help="with set: the collections it is in from now on (none: only All)")
    s.set_defaults(func=cmd_collections)
    s = sub.add_parser("ask", help="ask a question; streams the answer, then its sources")
    s.add_argument("question")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
    s.add_argument("--no-wait", action="store_true", help="answer retrieval-only if the model is not loaded yet")
    s.add_argument("--collection", action="append", default=[], help="search only this collection (repeat for several)")
    s.set_defaults(func=cmd_ask)
    s = sub.add_parser("status", help="load states, plan, memory, index and cache statistics")
    s.add_argument("--json", action="store_true")
    s.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the model to load")
    s.set_defaults(func=cmd_status)
    sub.add_parser("plan", help="print the memory plan for MODEL_PATH with reasons").set_defaults(func=cmd_plan)
    s = sub.add_parser("cache", help="answer cache: stats, clear, or warm FILE of questions")
    s.add_argument("action", choices=["stats", "clear", "warm"])
    s.add_argument("file", nargs="?")
    s.set_defaults(func=cmd_cache)
    sub.add_parser("docs", help="list indexed documents").set_defaults(func=cmd_docs)
    s = sub.add_parser("delete", help="remove a document (id prefix from `docs`)")
    s.add_argument("doc_id")
    s.set_defaults(func=cmd_delete)
    sub.add_parser("reindex", help="rebuild the index from the documents' files").set_defaults(func=cmd_reindex)
    s = sub.add_parser("config", help="print the table of env vars, or --check the current values")
    s.add_argument("--check", action="store_true", help="validate the environment and print the resolved values")
    s.set_defaults(func=cmd_config)
    sub.add_parser("demo", help="index the bundled guide and ask one question (what `make run` does)").set_defaults(
        func=cmd_demo
    )
    s = sub.add_parser("bench", help="speed and memory vs bare llama.cpp and a LangChain pipeline")
    s.add_argument("--quick", action="store_true", help="smoke run, under 3 minutes")
    s.add_argument("--out", default="bench-results", help="folder for bench.json, bench.md, bench.png")
    s.add_argument("--preset", action="append", choices=["0.5b", "1.5b"], help="model preset(s) to run")
    s.set_defaults(func=cmd_bench)
    s = sub.add_parser(
        "eval", help="retrieval quality on a SQuAD-format file (hybrid vs dense vs lexical), or --answers quality"
    )
    s.add_argument("qa", help="SQuAD-format JSON, e.g. tests/data/korean-qa.json")
    s.add_argument(
        "--answers",
        action="store_true",
        help="ask every question through the real pipeline and score the answers, citations and no-answers",
    )
    s.add_argument("--n", type=int, default=0, help="with --answers: a sample of N questions (0 = all)")
    s.add_argument("--seed", type=int, default=0, help="with --answers: the sample's seed")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--chunk-chars", type=int, default=0, help="chunk size in characters (default CHUNK_CHARS)")
    s.add_argument("--overlap", type=int, default=-1, help="chunk overlap in characters (default CHUNK_OVERLAP)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)
    s = sub.add_parser("chats", help="saved conversations: list, show, export or delete one")
    s.add_argument("action", choices=["list", "show", "export", "delete"])
    s.add_argument("id", nargs="?", help="a conversation id, or its first characters (from `chats list`)")
    s.add_argument("--search", default="", help="with list: only conversations containing this text")
    s.add_argument("--limit", type=int, default=50, help="with list: at most this many (newest first)")
    s.add_argument("--format", choices=["md", "json"], default="md", help="with show/export")
    s.add_argument("-o", "--out", help="with export: write to this file instead of printing")
    s.add_argument("--user", default="", help="with AUTH on: this user's conversations (default: from before sign-in)")
    s.set_defaults(func=cmd_chats)
    s = sub.add_parser("users", help="accounts for AUTH=local: add, passwd, disable, enable, admin, list, share")
    s.add_argument(
        "action",
        choices=["add", "passwd", "disable", "enable", "admin", "list", "share", "unshare", "shares", "apikey"],
    )
    s.add_argument("name", nargs="?", help="the user name (letters, digits, . _ @ -); with share: the owner")
    s.add_argument("more", nargs="*", help="with share/unshare: COLLECTION USER")
    s.add_argument("--admin", action="store_true", help="with add: an admin (manages the shared library)")
    s.add_argument("--revoke", action="store_true", help="with admin: take the role away; with apikey: revoke all")
    s.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin (scripts)"
    )
    s.set_defaults(func=cmd_users)
    s = sub.add_parser("serve", help="the OpenAI-compatible API alone, for headless servers (docs/api.md)")
    s.add_argument("--port", type=int, default=0, help="default: API_PORT, else 8000")
    s.add_argument("--host", default="", help="default: API_HOST (127.0.0.1)")
    s.set_defaults(func=cmd_serve)
    s = sub.add_parser("make-model", help="write a random-weight llama GGUF for tests and benchmarks")
    s.add_argument("out")
    s.add_argument("--preset", choices=["tiny", "0.5b", "1.5b"], default="tiny")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_make_model)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
