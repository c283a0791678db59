"""Real browser: `streamlit run app.py` on loopback, driven by Playwright in Debian's headless Chromium."""

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from rag.config import PROJECT_ROOT

from .servers import free_port

pytestmark = pytest.mark.slow  # a real streamlit server and Chromium

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHAT_INPUT = '[data-testid="stChatInput"] textarea'

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (make test installs it)", allow_module_level=True)


def start_server(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if health(port) == 200:
            return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"streamlit did not start: {proc.stderr.read()[-2000:]}")


def health(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
            return resp.status
    except OSError:
        return None


@pytest.fixture
def server(tiny_model, isolated):
    port = free_port()
    proc = start_server({"MODEL_PATH": str(tiny_model), "DATA_DIR": str(isolated / "data"), "MAX_UPLOAD_MB": "1"}, port)
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    """~50 MB: generates a few hundred tokens a second here, so a long answer lasts seconds."""
    from rag.modelgen import Shape, write_model

    shape = Shape(n_vocab=2048, n_embd=1024, n_layer=8, n_head=16, n_head_kv=4, n_ff=2816, n_ctx_train=8192)
    return write_model(tmp_path_factory.mktemp("slow") / "slow.gguf", shape)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def ask(page, question: str) -> None:
    page.fill(CHAT_INPUT, question)
    page.press(CHAT_INPUT, "Enter")


WATCH_LAST_ANSWER = """() => {
  window.__lengths = [];
  new MutationObserver(() => {
    const msgs = document.querySelectorAll('[data-testid="stChatMessage"]');
    const last = msgs[msgs.length - 1];
    // the answer's text: not the Stop button's label, a status caption or a source's expander
    const md = last && [...last.querySelectorAll('[data-testid="stMarkdownContainer"]')].find(
      (el) => !el.closest('[data-testid="stButton"], [data-testid="stCaptionContainer"], [data-testid="stExpander"]'));
    if (md && msgs.length >= 2) window.__lengths.push(md.innerText.length);
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_upload_ask_and_see_the_streamed_cited_answer(server, browser, tmp_path, isolated):
    doc = tmp_path / "locker.txt"
    doc.write_text(
        "Facilities note. The locker combination for the bike room is FERNTIDE-4471. "
        "Lockers are emptied every Friday evening."
    )
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a pdf")
    big = tmp_path / "big.txt"
    big.write_text("x" * (2 * 2**20))  # over MAX_UPLOAD_MB=1
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{server}")
    page.wait_for_selector(CHAT_INPUT, timeout=30_000)
    page.set_input_files('[data-testid="stFileUploader"] input[type="file"]', [str(broken), str(big), str(doc)])
    page.get_by_role("button", name="Add 3 file(s) to the index").click()
    page.get_by_text("locker.txt: 1 passage indexed").wait_for(timeout=90_000)
    page.get_by_text(re.compile(r"broken\.pdf: not a readable PDF")).wait_for()
    page.get_by_text(re.compile(r"big\.txt is 2\.0 MB; the limit is 1 MB")).wait_for()
    stored = list((isolated / "data" / "uploads").iterdir())  # the broken PDF's copy was removed
    assert len(stored) == 1 and stored[0].suffix == ".txt" and stored[0].read_text().startswith("Facilities")
    page.evaluate(WATCH_LAST_ANSWER)
    ask(page, "What is the locker combination for the bike room?")
    answer = page.locator('[data-testid="stChatMessage"]').nth(1)
    answer.get_by_text("cache miss").wait_for(timeout=90_000)
    lengths = page.evaluate("window.__lengths")
    assert len(set(lengths)) >= 2, lengths  # the answer grew on the page: it streamed
    citation = answer.locator('[data-testid="stExpander"]').first
    assert re.search(r"\[1\] locker\.txt · dense [\d.]+ \+ BM25 [\d.]+", citation.inner_text())  # both legs
    citation.click()
    assert "FERNTIDE-4471" in citation.inner_text()
    page.close()


def test_three_tabs_ask_at_once(server, browser):
    pages = []
    for _ in range(3):
        context = browser.new_context()  # separate browser sessions
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{server}")
        page.wait_for_selector(CHAT_INPUT, timeout=30_000)
        pages.append(page)
    for i, page in enumerate(pages):
        ask(page, f"Question {i}: how does the memory optimizer choose n_ctx?")
    for page in pages:
        page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("cache").wait_for(timeout=120_000)
    assert health(server) == 200
    for page in pages:
        page.context.close()


def test_second_tab_sees_its_place_and_stop_keeps_the_partial_answer(slow_model, isolated, browser):
    env = {
        "MODEL_PATH": str(slow_model),
        "MAX_TOKENS": "2000",
        "TEMPERATURE": "0",
        "TOP_K": "1",
        "DATA_DIR": str(isolated / "data"),
    }
    port = free_port()
    proc = start_server(env, port)
    try:
        tabs = []
        for _ in range(2):
            page = browser.new_context().new_page()
            page.goto(f"http://127.0.0.1:{port}")
            page.wait_for_selector(CHAT_INPUT, timeout=30_000)
            tabs.append(page)
        first, second = tabs
        first.get_by_text("Model ready").wait_for(timeout=60_000)
        first.get_by_text("Embedder ready").wait_for(timeout=60_000)
        question = "How does the memory optimizer choose the context size?"
        ask(first, question)
        first.get_by_text("Writing the answer").wait_for(timeout=60_000)
        ask(second, "What happens when a file fails to ingest?")
        second.get_by_text(re.compile(r"1 ahead of you")).wait_for(timeout=30_000)
        first.get_by_role("button", name=re.compile("Stop")).click()
        answer = first.locator('[data-testid="stChatMessage"]').nth(1)
        answer.get_by_text("(stopped)").wait_for(timeout=30_000)
        second.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("cache miss").wait_for(timeout=120_000)
        ask(first, question)  # the stopped answer was not cached: it is generated again
        first.get_by_text("Writing the answer").wait_for(timeout=60_000)
        assert first.locator('[data-testid="stChatMessage"]').nth(3).get_by_text("cache hit").count() == 0
        first.get_by_role("button", name=re.compile("Stop")).click()
        assert health(port) == 200
    finally:
        proc.terminate()
        proc.wait(10)


def chat_texts(page) -> list[str]:
    return [m.inner_text() for m in page.locator('[data-testid="stChatMessage"]').all()]


def settled_texts(page, expected: list[str], timeout: float = 20) -> list[str]:
    """The chat's texts once they equal `expected` (the page draws its messages over a few frames),
    or as they are at the timeout."""
    deadline = time.time() + timeout
    while (texts := chat_texts(page)) != expected and time.time() < deadline:
        page.wait_for_timeout(200)
    return texts


def test_a_conversation_survives_a_reload_and_a_server_restart(tiny_model, isolated, browser):
    env = {"MODEL_PATH": str(tiny_model), "TEMPERATURE": "0", "DATA_DIR": str(isolated / "data")}
    port = free_port()
    proc = start_server(env, port)
    try:
        page = browser.new_context().new_page()
        page.goto(f"http://127.0.0.1:{port}")
        page.wait_for_selector(CHAT_INPUT, timeout=30_000)
        page.get_by_text("Model ready").wait_for(timeout=60_000)
        page.get_by_text("Embedder ready").wait_for(timeout=60_000)
        page.get_by_text(re.compile(r"^1 document\(s\)")).wait_for(timeout=60_000)  # the bundled guide is indexed
        messages = page.locator('[data-testid="stChatMessage"]')
        ask(page, "How do I add documents?")
        messages.nth(1).get_by_text("cache miss").wait_for(timeout=90_000)
        ask(page, "What is the answer cache?")
        messages.nth(3).get_by_text("cache miss").wait_for(timeout=90_000)
        page.wait_for_url(re.compile(r"\?chat=[0-9a-f]{32}"))
        before = chat_texts(page)
        assert "[1] user-guide.md" in before[1] and "[1] user-guide.md" in before[3]  # each answer has its sources
        page.reload()  # the URL names the conversation: it is there again
        messages.nth(3).get_by_text("cache miss").wait_for(timeout=30_000)
        assert settled_texts(page, before) == before
    finally:
        proc.terminate()
        proc.wait(10)
    port = free_port()
    proc = start_server(env, port)  # a restarted server: nothing of the old process is left
    try:
        page = browser.new_context().new_page()
        page.goto(f"http://127.0.0.1:{port}")
        page.wait_for_selector(CHAT_INPUT, timeout=30_000)
        assert page.locator('[data-testid="stChatMessage"]').count() == 0  # a new session starts empty
        page.get_by_role("button", name="How do I add documents?").click()  # reopened from the list
        messages = page.locator('[data-testid="stChatMessage"]')
        messages.nth(3).get_by_text("cache miss").wait_for(timeout=30_000)
        assert settled_texts(page, before) == before  # both answers, their sources and captions
        source = messages.nth(1).locator('[data-testid="stExpander"]').first
        assert "[1] user-guide.md" in source.inner_text()
        source.click()
        assert len(source.inner_text()) > 100  # the passage itself
        page.get_by_text("Model ready").wait_for(timeout=60_000)
        ask(page, "And how do I delete one?")  # the follow-up continues the conversation
        messages.nth(5).get_by_text("cache miss").wait_for(timeout=90_000)
        assert messages.count() == 6
    finally:
        proc.terminate()
        proc.wait(10)
    from rag.conversations import SQLiteConversations

    saved = SQLiteConversations(isolated / "data" / "conversations.sqlite").list()
    assert len(saved) == 1 and saved[0].exchanges == 3


def sign_in(page, name: str, password: str) -> None:
    page.get_by_label("User name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=30_000)


def test_two_users_see_only_their_own_sources_conversations_and_documents(tiny_model, isolated, browser, postgres):
    """AUTH=local on a shared PostgreSQL: two users in two browser contexts upload different files and ask
    the same question; then a second app process on the same database lists each user's conversation."""
    from rag.accounts import Accounts
    from rag.db import PostgresDatabase

    url = postgres.new_database()
    accounts = Accounts(PostgresDatabase(url))
    codes = {"alice": "VELVETORCHID-17", "bob": "COPPERFINCH-42"}
    for name in codes:
        accounts.add(name, f"{name}-password")
    env = {
        "MODEL_PATH": str(tiny_model),
        "TEMPERATURE": "0",
        "AUTH": "local",
        "DATABASE_URL": url,
        "DATA_DIR": str(isolated / "data"),
    }
    question = "What is the access code for the service hatch?"
    port = free_port()
    proc = start_server(env, port)
    pages = {}
    try:
        # Streamlit's upload endpoint without a page session and its XSRF token (another site, a script): refused
        put = urllib.request.Request(
            f"http://127.0.0.1:{port}/_stcore/upload_file/some-session/some-file", data=b"x" * 100, method="PUT"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(put, timeout=10)
        assert refused.value.code == 403
        for name, code in codes.items():
            doc = isolated / f"{name}-hatch.txt"
            doc.write_text(f"Service hatch. The access code for the service hatch is {code}. Guards keep the key.")
            page = browser.new_context().new_page()
            page.goto(f"http://127.0.0.1:{port}")
            page.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
            assert page.get_by_text("Documents", exact=True).count() == 0  # nothing before signing in
            assert page.locator('[data-testid="stFileUploader"]').count() == 0
            sign_in(page, name, f"{name}-password")
            page.set_input_files('[data-testid="stFileUploader"] input[type="file"]', [str(doc)])
            page.get_by_role("button", name="Add 1 file(s) to the index").click()
            page.get_by_text(f"{name}-hatch.txt: 1 passage indexed").wait_for(timeout=90_000)
            page.get_by_text("Model ready").wait_for(timeout=60_000)
            pages[name] = page
        for name, page in pages.items():
            ask(page, question if name == "alice" else question + " Thanks!")
        for name, page in pages.items():
            answer = page.locator('[data-testid="stChatMessage"]').nth(1)
            answer.get_by_text("cache miss").wait_for(timeout=90_000)
            other = "bob" if name == "alice" else "alice"
            sources = answer.locator('[data-testid="stExpander"]')
            for i in range(sources.count()):
                sources.nth(i).click()
            text = answer.inner_text()
            assert f"{name}-hatch.txt" in text and codes[name] in text
            assert f"{other}-hatch.txt" not in text and codes[other] not in text
            sidebar = page.locator('[data-testid="stSidebar"]')
            assert f"{name}-hatch.txt" in sidebar.inner_text() and f"{other}-hatch.txt" not in sidebar.inner_text()
            assert page.get_by_role("button", name=question + " Thanks!").count() == (name == "bob")
    finally:
        proc.terminate()
        proc.wait(10)
    port = free_port()
    proc = start_server(env, port)  # a second app process on the same PostgreSQL
    try:
        page = browser.new_context().new_page()
        page.goto(f"http://127.0.0.1:{port}")
        sign_in(page, "alice", "alice-password")
        page.get_by_role("button", name=question, exact=True).click()  # her conversation, from the database
        page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("cache miss").wait_for(timeout=30_000)
        assert page.get_by_role("button", name=question + " Thanks!").count() == 0  # not bob's
    finally:
        proc.terminate()
        proc.wait(10)


def test_two_api_clients_and_a_browser_tab_at_once(tiny_model, isolated, browser):
    """`python -m ui.launch` with API_PORT: the API answers before any page is opened, from the same
    process and engine as the page; two API clients and a tab asking at once all finish."""
    import threading

    import openai

    api_port, port = free_port(), free_port()
    env = {"MODEL_PATH": str(tiny_model), "DATA_DIR": str(isolated / "data"), "API_PORT": str(api_port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.launch", "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{api_port}/v1", api_key="unused", max_retries=0, timeout=120)
        deadline = time.time() + 60
        while True:  # no page has been opened: the launcher made the engine and its API
            try:
                assert "ai-chat" in [m.id for m in client.models.list()]
                break
            except openai.APIConnectionError:
                assert time.time() < deadline, proc.stderr.read()[-2000:] if proc.poll() is not None else "no API"
                time.sleep(0.2)
        while health(port) != 200:  # the page's server starts after the engine
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.2)
        page = browser.new_context().new_page()
        page.goto(f"http://127.0.0.1:{port}")
        page.wait_for_selector(CHAT_INPUT, timeout=30_000)
        page.get_by_text("Model ready").wait_for(timeout=60_000)
        page.get_by_text(re.compile(r"^1 document\(s\)")).wait_for(timeout=60_000)  # the bundled guide
        answers: dict[int, object] = {}

        def api_client(i: int) -> None:
            try:
                reply = client.chat.completions.create(
                    model="ai-chat",
                    messages=[{"role": "user", "content": f"API question {i}: how do I add documents?"}],
                )
                answers[i] = reply.model_extra["sources"][0]["source"]
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                answers[i] = exc

        threads = [threading.Thread(target=api_client, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        ask(page, "Tab question: how do I add documents?")
        page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("cache miss").wait_for(timeout=120_000)
        for t in threads:
            t.join(120)
        assert answers == {0: "user-guide.md", 1: "user-guide.md"}  # the bundled guide, cited
        assert health(port) == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_sign_in_survives_a_reload_and_sign_out_ends_it(tiny_model, isolated, browser):
    from rag.accounts import Accounts
    from rag.db import SQLiteDatabase

    Accounts(SQLiteDatabase(isolated / "data" / "conversations.sqlite")).add("alice", "alice-password")
    env = {"MODEL_PATH": str(tiny_model), "AUTH": "local", "DATA_DIR": str(isolated / "data")}
    port = free_port()
    proc = start_server(env, port)
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}")
        sign_in(page, "alice", "alice-password")
        page.wait_for_function("document.cookie.includes('aichat_session=')", timeout=10_000)
        cookie = next(c for c in context.cookies() if c["name"] == "aichat_session")
        assert cookie["sameSite"] == "Strict" and len(cookie["value"]) > 30
        page.reload()  # the same browser: still signed in
        page.get_by_text("Signed in as alice").wait_for(timeout=30_000)
        other = context.new_page()  # a new tab of it too
        other.goto(f"http://127.0.0.1:{port}")
        other.get_by_text("Signed in as alice").wait_for(timeout=30_000)
        other.close()
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
        page.reload()  # the session ended on the server, and the cookie is gone
        page.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
        assert page.get_by_text("Signed in as alice").count() == 0
        assert not [c for c in context.cookies() if c["name"] == "aichat_session" and c["value"]]
        fresh = browser.new_context().new_page()  # another browser: never signed in
        fresh.goto(f"http://127.0.0.1:{port}")
        fresh.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
    finally:
        proc.terminate()
        proc.wait(10)
