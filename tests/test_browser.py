"""The chat UI in a real headless browser (Debian's chromium driven by Playwright), served by
`python app.py` in a subprocess with the real default model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import REPO, ingest_paths, make_settings
from .test_cli import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = REPO / "docs" / "screenshot.png"
pytestmark = pytest.mark.slow

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing: `make test` installs it (apt-get install chromium)")
    pytest.skip("chromium not installed (make test installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    index = root / "index"
    ingest_paths(make_settings(index), [REPO / "corpus"])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update({"ASSISTANT_INDEX_DIR": str(index), "ASSISTANT_UI_PORT": str(port),
                "ASSISTANT_UPLOAD_DIR": str(root / "uploads"), "GRADIO_ANALYTICS_ENABLED": "False"})
    APP_LOG["path"] = root / "app.log"
    log = open(APP_LOG["path"], "w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError((root / "app.log").read_text())
            time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError("the app did not start: " + (root / "app.log").read_text())
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


# Finished when the final answer (with citation links, the refusal or an error) replaced the stream.
FINAL_ANSWER_JS = """() => { const bots = document.querySelectorAll("#chat [data-testid='bot']");
                             const last = bots[bots.length - 1];
                             return last && (last.querySelector('a.cite') || last.innerText.includes('do not cover')
                                             || last.innerText.includes('did not work')); }"""
APP_LOG: dict[str, Path] = {}


def submit(page, question: str) -> None:
    """Type and send a question; wait until the chat shows it, so a lost click fails here, fast."""
    users = page.locator("#chat [data-testid='user']")
    before = users.count()
    page.locator("#question textarea").fill(question)
    page.locator("#ask-button").click()
    page.wait_for_function(
        f"() => document.querySelectorAll(\"#chat [data-testid='user']\").length > {before}", timeout=30_000)


def wait_for_answer(page, timeout_s: float = 180):
    """The last bot message once final; on timeout, say what the chat and the app log show."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(FINAL_ANSWER_JS, timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        shown = page.locator("#chat [data-testid='bot']").all_inner_texts()[-1:]
        log = APP_LOG["path"].read_text()[-2000:] if "path" in APP_LOG else ""
        raise AssertionError(f"no final answer in {timeout_s} s; chat shows {shown!r}; app log ends:\n{log}") from None
    answer = page.locator("#chat [data-testid='bot']").last
    assert "did not work" not in answer.inner_text(), answer.inner_text()
    return answer


def ask(page, question: str, timeout_s: float = 180):
    submit(page, question)
    return wait_for_answer(page, timeout_s)


def test_seed_question_answer_citation_and_sources_panel(browser, app_url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(app_url)
    answer = ask(page, "What is Nissan's Fisker angle?")
    assert "Fisker" in answer.inner_text()
    answer.locator("a.cite").first.click()
    source = page.locator("#sources .source.active")
    source.wait_for(timeout=10_000)
    assert "Nissan and Honda explore an EV and software partnership" in source.inner_text()
    assert "Alaska" in source.inner_text()
    assert source.locator("mark").count() > 0  # supporting words highlighted
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.close()


def test_an_earlier_answers_citation_leads_to_its_own_source_and_the_conversation_downloads(browser, app_url):
    """After a follow-up, the first answer's [1] opens the first answer's folded sources, not the
    latest answer's source [1] (each answer numbers its sources from 1)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(app_url)
    ask(page, "What is Nissan's Fisker angle?")
    submit(page, "When was that reported?")
    # The second answer is done when the panel shows its sources above the first answer's, folded.
    page.wait_for_function("() => document.querySelector('#sources details#turn-1') !== null", timeout=240_000)
    first = page.locator("#chat [data-testid='bot']").nth(0)
    folded = page.locator("#sources details#turn-1")
    assert folded.get_attribute("open") is None and "Answer 2: When was that reported?" in page.locator(
        "#sources").inner_text()
    first.locator("a.cite").first.click()
    source = page.locator("#sources .source.active")
    source.wait_for(timeout=10_000)
    assert source.get_attribute("id") == "source-1-1" and source.is_visible()
    assert folded.get_attribute("open") is not None
    assert "Alaska" in source.inner_text()  # the passage the first answer was given
    # The conversation downloads as Markdown, each answer with its sources.
    with page.expect_download(timeout=30_000) as download:
        page.locator("#download-conversation").click()
    document = Path(download.value.path()).read_text(encoding="utf-8")
    assert "## 1. What is Nissan's Fisker angle?" in document and "## 2. When was that reported?" in document
    assert document.count("1. **Nissan and Honda explore an EV and software partnership** (2024-03-15)") == 2
    page.close()


def test_a_refusal_points_to_the_closest_article(browser, app_url):
    page = browser.new_page()
    page.goto(app_url)
    answer = ask(page, "What is the capital of Mongolia?")
    assert answer.inner_text().startswith("The indexed articles do not cover this question.")
    closest = answer.locator(".closest li")
    assert closest.count() == 1 and "Nissan and Honda explore an EV and software partnership" in closest.inner_text()
    page.close()


def upload(page, path: Path, expect: str = "1 new") -> None:
    page.get_by_role("tab", name="Corpus").click()
    page.locator("#upload input[type='file']").set_input_files(str(path))
    page.locator("#ingest-button").click()
    page.locator("#ingest-status").get_by_text(expect).wait_for(timeout=120_000)
    page.get_by_role("tab", name="Ask").click()


def test_article_markup_is_shown_as_text_and_never_runs(browser, app_url, tmp_path):
    evil = tmp_path / "zoo.md"
    evil.write_text(
        "---\ntitle: <script>window.__pwned = 1</script> Zoo news\npublished: 2024-03-14\n---\n"
        'The zoo welcomed a baby giraffe named Kibo on Wednesday. <img src=x onerror="window.__pwned = 2"> '
        "Keepers said Kibo weighs 60 kilograms.\n",
        encoding="utf-8",
    )
    page = browser.new_page()
    page.goto(app_url)
    upload(page, evil)
    assert page.evaluate("window.__pwned") is None
    ask(page, "What is the name of the baby giraffe at the zoo?")
    assert page.evaluate("window.__pwned") is None
    sources = page.locator("#sources").inner_text()
    assert "<script>" in sources  # shown literally
    assert page.locator("#sources script, #sources img, #chat script, #chat img[src='x']").count() == 0
    page.close()


def test_upload_an_article_then_ask_about_it(browser, app_url, tmp_path):
    article = tmp_path / "scooters.md"
    article.write_text("---\ntitle: Zephyr Motors recalls scooters\npublished: 2024-03-20\nsite: example.com\n---\n"
                       "Zephyr Motors is recalling 5,000 electric scooters because their brakes can fail.\n",
                       encoding="utf-8")
    page = browser.new_page()
    page.goto(app_url)
    page.get_by_role("tab", name="Corpus").click()
    page.locator("#upload input[type='file']").set_input_files(str(article))
    page.locator("#ingest-button").click()
    page.locator("#ingest-status").get_by_text("1 new").wait_for(timeout=120_000)
    assert "articles" in page.locator("#stats").inner_text()
    page.locator("#title-search textarea").fill("Zephyr")
    page.locator("#articles").get_by_text("Zephyr Motors recalls scooters").wait_for(timeout=10_000)
    page.get_by_role("tab", name="Ask").click()
    answer = ask(page, "How many scooters is Zephyr Motors recalling?")
    page.screenshot(path=str(tmp_path / "upload.png"), full_page=True)
    assert "5,000" in answer.inner_text() or "5000" in answer.inner_text()
    page.close()


def test_two_users_chat_at_once_without_mixing(browser, app_url):
    first, second = browser.new_context().new_page(), browser.new_context().new_page()
    first.goto(app_url)
    second.goto(app_url)
    submit(first, "Who did Honda partner with for North America?")
    submit(second, "What is Nissan's Fisker angle?")
    for page in (first, second):
        wait_for_answer(page, timeout_s=240)
    first_chat, second_chat = first.locator("#chat").inner_text(), second.locator("#chat").inner_text()
    assert "Honda partner" in first_chat and "Fisker" not in first_chat
    assert "Fisker" in second_chat and "Honda partner" not in second_chat
    # Starting a new conversation clears only that user's chat.
    first.locator("#new-conversation").click()
    first.wait_for_function("() => document.querySelectorAll(\"#chat [data-testid='bot']\").length === 0",
                            timeout=10_000)
    assert second.locator("#chat [data-testid='bot']").count() == 1


def test_remove_an_article_from_the_corpus_tab(browser, app_url, tmp_path):
    article = tmp_path / "kites.md"
    article.write_text("---\nid: kite-festival\ntitle: Kite festival cancelled\npublished: 2024-03-18\n---\n"
                       "The Weymouth kite festival was cancelled because of storms.\n", encoding="utf-8")
    page = browser.new_page()
    page.goto(app_url)
    upload(page, article)
    page.get_by_role("tab", name="Corpus").click()
    before = page.locator("#stats").inner_text()
    page.locator("#title-search textarea").fill("Kite festival")
    # Click only once the search has narrowed the table to this row (it re-renders meanwhile).
    page.wait_for_function("""() => { const first = document.querySelector("#articles [data-testid='cell-0-0']");
                                      return first && first.innerText.includes('Kite festival cancelled')
                                             && !document.querySelector("#articles [data-testid='cell-1-0']"); }""",
                           timeout=10_000)
    page.locator("#articles [data-testid='cell-0-0']").click()
    page.wait_for_function("() => document.querySelector('#selected-article textarea').value === 'kite-festival'",
                           timeout=10_000)
    page.locator("#remove-button").click()  # the first click only asks
    page.locator("#remove-status").get_by_text("Click \"Remove from index\" again").wait_for(timeout=30_000)
    assert "Kite festival cancelled" in page.locator("#remove-status").inner_text()
    assert page.locator("#stats").inner_text() == before
    page.locator("#remove-button").click()
    page.locator("#remove-status").get_by_text("Removed Kite festival cancelled").wait_for(timeout=60_000)
    assert page.locator("#articles").get_by_text("Kite festival cancelled").count() == 0
    assert page.locator("#stats").inner_text() != before
    assert page.locator("#selected-article textarea").input_value() == ""
    page.close()
