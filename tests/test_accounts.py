"""Isolation between signed-in users, with a planted code in each user's document: nothing of one
user reaches another through retrieval (both legs), the exact or semantic answer cache, the
document and collection lists, deletes, re-index, or the conversations; the shared library is seen
by all and changed only by admins; a shared collection is read by the users it is shared with, and
only while it is. Plus the sign-in page (AppTest)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from streamlit.testing.v1 import AppTest

from rag import retrieve
from rag.accounts import Viewer
from rag.config import PROJECT_ROOT
from rag.engine import Engine
from rag.errors import RagError
from rag.events import Done, Hits
from rag.index import Access

ALICE, BOB, ADMIN = Viewer("alice"), Viewer("bob"), Viewer("root", admin=True)
ALICE_TEXT = "Service hatch. The access code for the service hatch is VELVETORCHID-17. Guards keep the key."
BOB_TEXT = "Service hatch. The access code for the service hatch is COPPERFINCH-42. Guards keep the key."
SHARED_TEXT = "Canteen. The canteen opens at 07:30 and closes at 15:00; the menu changes on Mondays."
QUESTION = "What is the access code for the service hatch?"
PASSWORD = "correct horse battery"
APP = str(PROJECT_ROOT / "app.py")
pytestmark = pytest.mark.usefixtures("fresh_engine")  # each AppTest with its own engine


@pytest.fixture
def engine(settings, embedder, tiny_model, tmp_path):
    engine = Engine(replace(settings, model_path=tiny_model, temperature=0.0, auth="local"), embedder=embedder)
    for who, text in ((ALICE, ALICE_TEXT), (BOB, BOB_TEXT)):
        notes = engine.add_uploads([("hatch.txt", text.encode())], viewer=who, collection="Keys")
        assert notes[0].ok, notes
    assert engine.add_uploads([("canteen.txt", SHARED_TEXT.encode())], viewer=ADMIN, shared=True)[0].ok
    engine.chain.local.model.get(timeout=60)
    yield engine
    engine.close()


def _ask(engine, viewer, question=QUESTION):
    events = list(engine.ask(question, wait_for_model=True, viewer=viewer))
    done = [e for e in events if isinstance(e, Done)][-1]
    hits = [e for e in events if isinstance(e, Hits)][-1].hits
    return done, " ".join(h.text for h in hits)


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_each_leg_finds_only_the_users_own_and_shared_documents(engine, embedder, mode):
    store = engine.index.get()
    for viewer, mine, theirs in ((ALICE, "VELVETORCHID", "COPPERFINCH"), (BOB, "COPPERFINCH", "VELVETORCHID")):
        hits = retrieve.search(embedder, store, QUESTION, 10, mode=mode, access=Access(viewer.name))
        text = " ".join(h.text for h in hits)
        assert mine in text and theirs not in text
        assert "VELVETORCHID" not in " ".join(
            h.text for h in retrieve.search(embedder, store, "VELVETORCHID-17", 10, mode=mode, access=Access("bob"))
        )  # not even when asked for by its exact words
    shared = retrieve.search(embedder, store, "When does the canteen open?", 3, mode=mode, access=Access("bob"))
    assert shared and shared[0].source == "canteen.txt"
    everything = " ".join(h.text for h in retrieve.search(embedder, store, QUESTION, 10, mode=mode))
    assert "VELVETORCHID" in everything and "COPPERFINCH" in everything  # sign-in off: one user, all of it


def test_an_answer_cached_for_one_user_is_never_served_to_another(engine):
    alice, alice_passages = _ask(engine, ALICE)
    assert alice.cache is None and "VELVETORCHID" in alice_passages and "COPPERFINCH" not in alice_passages
    assert _ask(engine, ALICE)[0].cache == "exact"  # cached for alice
    bob, bob_passages = _ask(engine, BOB)  # the identical question
    assert bob.cache is None and "VELVETORCHID" not in bob_passages + bob.answer
    assert "COPPERFINCH" in bob_passages
    near, near_passages = _ask(engine, BOB, "What is the access code for the service hatch ?!")
    assert near.cache != "semantic" or "VELVETORCHID" not in near.answer + near_passages
    nobody, _ = _ask(engine, Viewer("carol"))
    assert nobody.cache is None and "VELVETORCHID" not in nobody.answer and "COPPERFINCH" not in nobody.answer


def test_lists_deletes_and_reindex_respect_owners(engine):
    def sources(viewer):
        return sorted((d["source"], d["owner"]) for d in engine.documents(viewer).documents)

    assert sources(ALICE) == [("canteen.txt", ""), ("hatch.txt", "alice")]
    assert sources(BOB) == [("canteen.txt", ""), ("hatch.txt", "bob")]
    assert engine.collections(ALICE) == {"Keys": 1} and engine.collections(None) == {"Keys": 2}
    alice_doc = next(d for d in engine.documents(ALICE).documents if d["owner"] == "alice")
    shared_doc = next(d for d in engine.documents(ALICE).documents if d["owner"] == "")
    with pytest.raises(RagError, match="no document"):
        engine.delete_document(alice_doc["doc_id"], BOB)  # not even named to bob
    with pytest.raises(RagError, match="no document"):
        engine.set_collections(alice_doc["doc_id"], ["Mine"], BOB)
    with pytest.raises(RagError, match="only an admin"):
        engine.delete_document(shared_doc["doc_id"], ALICE)
    with pytest.raises(RagError, match="ask an admin"):
        engine.reindex(viewer=ALICE)
    assert engine.add_uploads([("x.txt", b"anything at all")], viewer=BOB, shared=True)[0].ok is False
    engine.reindex(viewer=ADMIN)  # every document keeps its owner and collections
    assert sources(ALICE) == [("canteen.txt", ""), ("hatch.txt", "alice")]
    assert engine.collections(BOB) == {"Keys": 1}
    bob_doc = next(d for d in engine.documents(BOB).documents if d["owner"] == "bob")
    engine.delete_document(bob_doc["doc_id"], BOB)
    assert sources(BOB) == [("canteen.txt", "")] and ("hatch.txt", "alice") in sources(ALICE)
    engine.delete_document(shared_doc["doc_id"], ADMIN)
    assert sources(ALICE) == [("hatch.txt", "alice")]


def test_the_same_file_added_by_two_users_is_two_documents(engine):
    again = engine.add_uploads([("hatch-copy.txt", ALICE_TEXT.encode())], viewer=BOB)
    assert again[0].ok and "indexed" in again[0].text  # bob's own copy, not "already indexed"
    assert "already indexed" in engine.add_uploads([("h.txt", ALICE_TEXT.encode())], viewer=ALICE)[0].text
    bob_copy = next(d for d in engine.documents(BOB).documents if d["source"] == "hatch-copy.txt")
    alice_doc = next(d for d in engine.documents(ALICE).documents if d["owner"] == "alice")
    assert bob_copy["doc_id"] != alice_doc["doc_id"]
    engine.delete_document(bob_copy["doc_id"], BOB)
    assert any(d["doc_id"] == alice_doc["doc_id"] for d in engine.documents(ALICE).documents)
    assert (engine.uploads_dir / alice_doc["path"].rsplit("/", 1)[1]).exists()  # alice's file is kept


def test_conversations_belong_to_their_user(engine):
    from rag.export import to_markdown

    conv = engine.history.add(None, QUESTION, {"content": "VELVETORCHID-17 [1]"}, owner="alice")
    assert engine.history.get(conv, "bob") is None and engine.history.list(owner="bob") == []
    exported = to_markdown(engine.history.get(conv, "alice"))
    assert "VELVETORCHID-17" in exported


def test_the_app_asks_for_a_sign_in_and_shows_nothing_before_it(settings, monkeypatch, tmp_path):
    from rag.accounts import Accounts
    from rag.db import open_database

    monkeypatch.setenv("AUTH", "local")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("no account yet" in i.value for i in at.info)  # the first admin is made on the server
    accounts = Accounts(open_database("", settings.data_dir))
    accounts.add("alice", PASSWORD)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert [b.label for b in at.button] == ["Sign in"] and not at.sidebar.subheader  # no documents, no chats
    at.text_input(key="sign-in-name").input("alice")
    at.text_input(key="sign-in-password").input("wrong password")
    at.button[0].click().run()
    assert any("Wrong user name or password" in e.value for e in at.error)
    at.text_input(key="sign-in-name").input("alice")
    at.text_input(key="sign-in-password").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert any("Signed in as alice" in c.value for c in at.sidebar.caption)
    assert "Documents" in [s.value for s in at.sidebar.subheader]
    at.button(key="sign-out").click().run()
    assert "Documents" not in [s.value for s in at.sidebar.subheader]


def test_oidc_without_its_secrets_says_what_to_configure(monkeypatch):
    monkeypatch.setenv("AUTH", "oidc")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert any("needs an [auth] section" in e.value for e in at.error), (at.exception, at.error, at.info)
    assert "Documents" not in [s.value for s in at.sidebar.subheader]
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "a-long-random-string-for-tests",
        "client_id": "ai-chat",
        "client_secret": "not-a-real-secret",
        "server_metadata_url": "https://login.example.org/.well-known/openid-configuration",
    }
    at.run()
    assert not at.error and [b.label for b in at.button] == ["Sign in with your organisation's account"]


def test_a_shared_collection_is_read_while_it_is_shared(engine):
    """alice shares her "Keys" collection with bob: bob's searches find her code, cached answers
    included, until she stops; then neither retrieval nor the cache gives it to him."""
    from rag.accounts import Accounts

    accounts: Accounts = engine.accounts
    for name in ("alice", "bob", "carol"):
        accounts.add(name, PASSWORD)
    accounts.share("alice", "Keys", "bob")
    _, bob = accounts.sign_in("bob", PASSWORD)
    assert bob.shared == (("alice", "Keys"),)
    done, passages = _ask(engine, bob)
    assert "VELVETORCHID" in passages and "COPPERFINCH" in passages  # his own and alice's shared one
    assert _ask(engine, bob)[0].cache == "exact"
    alice_doc = next(d for d in engine.documents(bob).documents if d["owner"] == "alice")
    with pytest.raises(RagError, match="shared with you by alice"):
        engine.delete_document(alice_doc["doc_id"], bob)
    carol = accounts.sign_in("carol", PASSWORD)[1]
    assert "VELVETORCHID" not in _ask(engine, carol)[1]  # shared with bob only
    accounts.unshare("alice", "Keys", "bob")
    bob = accounts.session(accounts.sign_in("bob", PASSWORD)[0])
    assert bob is not None and bob.shared == ()
    after, passages = _ask(engine, bob)
    assert after.cache is None and "VELVETORCHID" not in passages + after.answer  # the cached answer is not his now
    assert [d["owner"] for d in engine.documents(bob).documents if d["owner"] == "alice"] == []
