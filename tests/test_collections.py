"""Collections: documents in named collections, retrieval (both legs) and the answer cache scoped by
them, memberships kept across replace, re-index and upgrade, and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from rag import retrieve
from rag.engine import Engine
from rag.events import Done, Hits
from rag.index import IndexStore
from rag.ingest import ingest

from .conftest import make_older_index, run_cli

# the same question is answered in both collections, each with its own planted code
HR = "Archive room. The access code for the archive room is KESTREL-4471. Visitors sign the archive log."
PUMPS = "Pump room. The access code for the pump room is OSPREY-9920. Technicians sign the pump log."
OTHER = "Cafeteria. Lunch is served from noon; the menu changes every Monday."
QUESTION = "What is the access code?"


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    out = {}
    for name, text in (("hr.txt", HR), ("pumps.txt", PUMPS), ("cafeteria.txt", OTHER)):
        (folder / name).write_text(text)
        out[name] = folder / name
    return out


@pytest.fixture
def store(tmp_path, embedder, files):
    s = IndexStore(tmp_path / "index")
    ingest([files["hr.txt"]], embedder, s, 900, 150, collection="HR")
    ingest([files["pumps.txt"]], embedder, s, 900, 150, collection="Pumps")
    ingest([files["cafeteria.txt"]], embedder, s, 900, 150)
    return s


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_each_leg_searches_only_the_chosen_collections(store, embedder, mode):
    everything = {h.source for h in retrieve.search(embedder, store, QUESTION, 5, mode=mode)}
    assert {"hr.txt", "pumps.txt"} <= everything
    hr = retrieve.search(embedder, store, QUESTION, 5, mode=mode, collections=["HR"])
    assert [h.source for h in hr] == ["hr.txt"] and "KESTREL-4471" in hr[0].text
    pumps = retrieve.search(embedder, store, QUESTION, 5, mode=mode, collections=["Pumps"])
    assert [h.source for h in pumps] == ["pumps.txt"] and "OSPREY-9920" in pumps[0].text
    both = {h.source for h in retrieve.search(embedder, store, QUESTION, 5, mode=mode, collections=["HR", "Pumps"])}
    assert both == {"hr.txt", "pumps.txt"}
    assert retrieve.search(embedder, store, QUESTION, 5, mode=mode, collections=["Nobody"]) == []


def test_memberships_follow_moves_replacements_deletes_and_reindex(store, embedder, files, tmp_path):
    def members():
        return {d["source"]: d["collections"] for d in store.documents()}

    assert members() == {"hr.txt": ["HR"], "pumps.txt": ["Pumps"], "cafeteria.txt": []}
    assert store.collections() == {"HR": 1, "Pumps": 1}
    pumps = next(d["doc_id"] for d in store.documents() if d["source"] == "pumps.txt")
    store.commit(members={pumps: ["Pumps", "Facilities", " Facilities ", "All documents", ""]})
    assert members()["pumps.txt"] == ["Facilities", "Pumps"]  # trimmed, once, "All documents" implied
    files["pumps.txt"].write_text(PUMPS + " The code changes every quarter.")  # a changed file replaces its version
    ingest([files["pumps.txt"]], embedder, store, 900, 150)
    assert members()["pumps.txt"] == ["Facilities", "Pumps"]  # kept by the new version
    ingest([files["cafeteria.txt"]], embedder, store, 900, 150, collection="Facilities")  # already indexed: joins
    assert members()["cafeteria.txt"] == ["Facilities"]
    before = members()
    ingest([f for f in files.values()], embedder, store, 900, 150, reset=True)  # re-index
    assert members() == before
    hr = next(d["doc_id"] for d in store.documents() if d["source"] == "hr.txt")
    store.commit(delete=[hr])
    assert "HR" not in store.collections()
    with store.reading() as version:
        assert version.query("SELECT count(*) FROM collections WHERE doc_id=?", (hr,))[0][0] == 0


def test_an_index_from_before_collections_gets_them_at_its_next_commit(store, embedder, files):
    make_older_index(store, "DROP TABLE collections")
    old = IndexStore(store.root)
    assert old.collections() == {} and all(d["collections"] == [] for d in old.documents())
    assert old.search(embedder.embed_queries([QUESTION])[0], 5, ["HR"]) == []  # no collection is named yet
    assert len(old.search(embedder.embed_queries([QUESTION])[0], 5)) == 3  # the rest works as before
    ingest([files["hr.txt"]], embedder, old, 900, 150, collection="HR")
    assert old.collections() == {"HR": 1}


def _answer(engine, collections):
    events = list(engine.ask(QUESTION, wait_for_model=True, collections=collections))
    done = [e for e in events if isinstance(e, Done)][-1]
    hits = [e for e in events if isinstance(e, Hits)][-1].hits
    return done, {h.source for h in hits}


def test_an_answer_cached_for_one_collection_is_never_served_for_another(settings, embedder, tiny_model, files):
    engine = Engine(replace(settings, model_path=tiny_model, temperature=0.0), embedder=embedder)
    engine.ingest([files["hr.txt"]], collection="HR")
    engine.ingest([files["pumps.txt"]], collection="Pumps")
    engine.chain.local.model.get(timeout=60)
    hr, hr_sources = _answer(engine, ["HR"])
    assert hr.cache is None and hr_sources == {"hr.txt"}
    again, _ = _answer(engine, ["HR"])
    assert again.cache == "exact" and again.answer == hr.answer
    pumps, pumps_sources = _answer(engine, ["Pumps"])
    assert pumps.cache is None and pumps_sources == {"pumps.txt"}  # not HR's cached answer
    every, every_sources = _answer(engine, [])
    assert every.cache is None and every_sources == {"hr.txt", "pumps.txt"}
    assert _answer(engine, ["All documents"])[0].cache == "exact"  # the same as no choice


def test_collections_command(tmp_path, files):
    env = {"INDEX_DIR": str(tmp_path / "cli-index")}
    added = run_cli("ingest", str(files["hr.txt"]), "--collection", "HR", env=env)
    assert added.returncode == 0, added.stderr
    assert run_cli("ingest", str(files["pumps.txt"]), env=env).returncode == 0
    listed = run_cli("collections", "list", env=env)
    assert "2 document(s)  All documents" in listed.stdout and "1 document(s)  HR" in listed.stdout
    docs = run_cli("docs", env=env).stdout
    pumps = next(line.split()[0] for line in docs.splitlines() if "pumps.txt" in line)
    moved = run_cli("collections", "set", pumps, "Pumps", "Facilities", env=env)
    assert moved.returncode == 0 and "is in Facilities, Pumps" in moved.stdout
    assert "pumps.txt  [Facilities, Pumps]" in run_cli("docs", env=env).stdout
    answer = run_cli("ask", QUESTION, "--collection", "Pumps", "--json", env=env)
    sources = {s["source"] for s in json.loads(answer.stdout)["sources"]}
    assert answer.returncode == 0 and sources == {"pumps.txt"}
    bad = run_cli("collections", "set", "zzzz", "X", env=env)
    assert bad.returncode == 1 and "0 documents match 'zzzz'" in bad.stderr
