"""The chat UI (Gradio Blocks, served by `python app.py`).

Ask tab: streamed answers with follow-ups, numbered citations that link to a
sources panel (title, site, date, link, the passage with the supporting words
highlighted; earlier answers' sources stay, folded under their question), date
and site filters, example questions, a new-conversation button, and a download
of the conversation with its sources as Markdown. Corpus tab: upload and ingest
articles with a progress bar, index statistics, the list of articles searchable
by title, and removing an article (click its row, then "Remove from index" twice). A named API endpoint
`ask` returns the same JSON object as `python -m assistant ask --json`.

Every piece of article text or model output is HTML-escaped before it is shown:
an article containing <script> or onerror= shows as text.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import queue
import re
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

from .answer import Answer, NewsAssistant
from .articles import SUPPORTED_SUFFIXES, ArticleLoader
from .citations import CITATION, Citation, citation_numbers
from .errors import AssistantError
from .retrieval import RetrievalFilters
from .settings import Settings, env_name
from .store import ArticleSelection
from .text import content_words

EXAMPLES = [
    "What is Nissan's Fisker angle?",
    "Who did Honda partner with for North America?",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
UPLOAD_TYPES = sorted(SUPPORTED_SUFFIXES | {".gz"})
MAX_UPLOAD = "20mb"
ARTICLE_ROWS = 200
ARTICLE_ID_COLUMN = 4  # of the article table's rows: title, site, published, url, id

# Clicking a citation mark scrolls the sources panel to that source and flashes it.
HEAD = """
<script>
document.addEventListener("click", (event) => {
  const link = event.target.closest("a.cite");
  if (!link) return;
  event.preventDefault();
  const target = document.getElementById(link.dataset.source || link.getAttribute("href").slice(1));
  if (!target) return;
  const earlier = target.closest("details");  // an earlier answer's sources are folded away
  if (earlier) earlier.open = true;
  target.scrollIntoView({behavior: "smooth", block: "center"});
  document.querySelectorAll(".source.active").forEach((el) => el.classList.remove("active"));
  target.classList.add("active");
}, true);
</script>
"""
CSS = """
.source { border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; margin-bottom: 8px; }
.source.active { border-color: #f59e0b; box-shadow: 0 0 0 2px #fcd34d; }
.source .meta { color: #666; font-size: 0.85em; }
.source blockquote { margin: 6px 0 0 0; padding-left: 8px; border-left: 3px solid #ccc; }
.source mark { background: #fde68a; }
.closest { font-size: 0.85em; }
.turn-head { color: #444; font-size: 0.9em; margin: 4px 0 6px 0; }
details.turn { margin-top: 10px; }
a.cite { text-decoration: none; font-weight: 600; }
"""


# -- rendering (all text escaped) ---------------------------------------------
def source_id(turn: int, n: int) -> str:
    """The element id of source [n] of the conversation's ``turn``-th answer: every answer numbers
    its sources from 1, so an earlier answer's [1] must not lead to the latest answer's [1]."""
    return f"source-{turn}-{n}"


def render_answer(answer: Answer, note: str = "", turn: int = 1) -> str:
    """The answer for the chat: escaped text, [n] as links to its sources in the sources panel."""
    text = html.escape(answer.answer)

    def link(match: re.Match) -> str:
        return "".join(f'<a class="cite" href="#{source_id(turn, n)}" data-source="{source_id(turn, n)}">[{n}]</a>'
                       for n in citation_numbers(match.group(0)))

    text = CITATION.sub(link, text)
    if answer.standalone_question and answer.standalone_question != answer.question:
        text += f"\n\n<small>Searched for: {html.escape(answer.standalone_question)}</small>"
    if note:
        text += f"\n\n<small>{html.escape(note)}</small>"
    if answer.closest_articles:
        items = "".join(f"<li>{_article_line(c)}</li>" for c in answer.closest_articles)
        # A block element: a list inside <small> is invalid HTML and the browser splits it apart.
        text += f'\n\n<div class="closest">Closest articles (not enough to answer):<ul>{items}</ul></div>'
    return text


def _article_line(c: Citation) -> str:
    """Escaped 'title (site · date)', linked to the original when it has a web address."""
    about = _about(c, " · ")
    return f"{_web_link(c.url, _title(c))}{f' ({about})' if about else ''}"


def _about(c: Citation, separator: str) -> str:
    return separator.join(html.escape(x) for x in (c.site, c.published) if x)


def _web_link(url: str, label: str) -> str:
    """``label`` (already escaped) linked to ``url`` in a new tab; only http(s) addresses become links."""
    if not url.startswith(("http://", "https://")):
        return label
    return f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">{label}</a>'


def render_sources(answer: Answer | None, turn: int = 1) -> str:
    """The sources of one answer (the ``turn``-th of its conversation), as the panel shows them."""
    if answer is None or not answer.citations:
        return '<div class="sources-empty">Sources of the answer appear here.</div>'
    cited_words: dict[int, set[str]] = {}
    for check in answer.checks:
        for n in check.cited:
            cited_words.setdefault(n, set()).update(content_words(check.sentence))
    blocks = []
    for c in answer.citations:
        about = _about(c, " · ")
        link = f" · {_web_link(c.url, 'original')}" if c.url.startswith(("http://", "https://")) else ""
        passage = _highlight(" ".join(c.text.split()), cited_words.get(c.n, content_words(answer.answer)))
        blocks.append(
            f'<div class="source" id="{source_id(turn, c.n)}"><b>[{c.n}] {_title(c)}</b>'
            f'<div class="meta">{about}{link}</div><blockquote>{passage}</blockquote></div>'
        )
    return "".join(blocks)


def render_conversation_sources(answers: list[Answer]) -> str:
    """The sources panel for a whole conversation (its answers, oldest first). The latest answer's
    sources come first and open; earlier answers' are folded under their question, and open when
    one of their [n] is clicked."""
    if not answers:
        return render_sources(None)

    def sources_of(answer: Answer, turn: int) -> str:
        if answer.citations:
            return render_sources(answer, turn)
        why = "the indexed articles do not cover this question" if answer.refused else "this answer cites none"
        return f'<div class="sources-empty">No sources: {why}.</div>'

    *earlier, latest = answers
    blocks = [f'<div class="turn-head">Answer {len(answers)}: {html.escape(latest.question)}</div>'
              f'{sources_of(latest, len(answers))}']
    for turn, answer in reversed(list(enumerate(earlier, start=1))):
        blocks.append(f'<details class="turn" id="turn-{turn}"><summary class="turn-head">Answer {turn}: '
                      f'{html.escape(answer.question)}</summary>{sources_of(answer, turn)}</details>')
    return "".join(blocks)


def conversation_markdown(answers: list[Answer], asked_on: dt.date | None = None) -> str:
    """The conversation as a Markdown document to keep or paste into a report: each question, its
    answer and the sources its [n] refer to (see sources_markdown)."""
    lines = [f"# News assistant conversation{f' ({asked_on.isoformat()})' if asked_on else ''}"]
    for turn, answer in enumerate(answers, start=1):
        lines += ["", f"## {turn}. {_md(answer.question)}", ""]
        if answer.standalone_question and answer.standalone_question != answer.question:
            lines += [f"*Searched for: {_md(answer.standalone_question)}*", ""]
        lines.append(_md(answer.answer))
        sources = sources_markdown(answer)
        if sources:
            lines += ["", sources]
    return "\n".join(lines) + "\n"


def _highlight(text: str, words: set[str]) -> str:
    """Escaped passage with the words it shares with the answer marked."""
    out = []
    for piece in re.split(r"(\w+)", text):
        escaped = html.escape(piece)
        out.append(f"<mark>{escaped}</mark>" if piece.lower() in words else escaped)
    return "".join(out)


def format_sources(answer: Answer) -> str:
    """The sources under the /chat API's text answer (empty when there are none)."""
    sources = sources_markdown(answer)
    return f"\n{sources}" if sources else ""


def sources_markdown(answer: Answer) -> str:
    """An answer's sources in Markdown, for the /chat API and the downloaded conversation: per [n]
    the title, site, date, link and the passage; for a refusal, the closest articles. Markup in
    article text is escaped (<, >, &) so that a viewer shows it as text."""
    if answer.citations:
        lines = ["**Sources**", ""]
        for c in answer.citations:
            lines += [f"{c.n}. **{_md(c.title or c.article_id)}**{_markdown_meta(c)}",
                      f"   > {_md(' '.join(c.text.split()))}"]
    elif answer.closest_articles:
        lines = ["**Closest articles** (not enough to answer)", ""]
        lines += [f"- **{_md(c.title or c.article_id)}**{_markdown_meta(c)}" for c in answer.closest_articles]
    else:
        return ""
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text for Markdown: markup escaped, quotes left readable (a saved file is read as it is)."""
    return html.escape(text, quote=False)


def _title(c: Citation) -> str:
    """The escaped title (the article id when it has none), in every place an article is named in HTML."""
    return html.escape(c.title or c.article_id)


def _markdown_meta(c: Citation) -> str:
    """' (site, date) <url>', each part only when known."""
    about = ", ".join(_md(x) for x in (c.site, c.published) if x)
    return f"{f' ({about})' if about else ''}{f' <{_md(c.url)}>' if c.url else ''}"


# -- asking -------------------------------------------------------------------------
def _day(value) -> dt.date | None:
    value = (value or "").strip() if isinstance(value, str) else value
    if not value:
        return None
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc).date()
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise AssistantError(f"'{value}' is not a date (YYYY-MM-DD)") from None


def parse_as_of(value) -> dt.date:
    """The day a question is asked: as given, else today (taken per question: the app runs for days).
    As on the command line, later articles are left out and recent ones preferred."""
    return _day(value) or dt.date.today()


def parse_filters(since: str | None, until: str | None, sites) -> RetrievalFilters:
    if isinstance(sites, str):
        sites = [s.strip() for s in sites.split(",")]
    return RetrievalFilters.asked(_day(since), _day(until), (s for s in sites or [] if s))


def stream_answer(assistant: NewsAssistant, question: str, history: list[tuple[str, str]] | None = None,
                  filters: RetrievalFilters | None = None, as_of: dt.date | None = None) -> Iterator[str | Answer]:
    """Yields the answer text as it is generated, then the final ``Answer`` (or an error string).
    ``as_of`` defaults to today, as ``ask --as-of`` does."""
    tokens: queue.Queue = queue.Queue()
    result: dict = {}
    as_of = as_of or dt.date.today()

    def work():
        try:
            result["answer"] = assistant.ask(question, filters=filters, as_of=as_of, on_token=tokens.put,
                                             history=history)
        except AssistantError as exc:
            result["error"] = str(exc)
        except Exception as exc:  # never show a stack trace in the chat
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            tokens.put(None)

    threading.Thread(target=work, daemon=True).start()
    partial = ""
    while (token := tokens.get()) is not None:
        partial += token
        yield partial
    if "error" in result:
        yield f"Sorry, that did not work: {result['error']}"
        return
    yield result["answer"]


def refusal_note(answer: Answer, filters: RetrievalFilters, asked_on: dt.date) -> str:
    """Under a refusal asked with filters or another as-of day: whether they left no article at all,
    or may have left out the ones that cover the question."""
    if not answer.refused or (filters.is_empty() and asked_on == dt.date.today()):
        return ""
    if answer.nothing_matched:
        return "No indexed article matches the filters (dates, sites or as-of date)."
    return "The filters (dates, sites or as-of date) may have left out the articles that cover it."


# -- the app ---------------------------------------------------------------------------
KEEP_FILES_S = 24 * 3600  # how long conversation downloads and Gradio's file copies are kept


def remove_files_older_than(folder: Path, seconds: float) -> None:
    """Delete the files in ``folder`` last modified more than ``seconds`` ago (a long-running app
    writes a download per answer; nothing else cleans them up)."""
    cutoff = time.time() - seconds
    for path in folder.glob("*"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:  # removed meanwhile by another worker, or not ours to remove
            pass


def build_app(settings: Settings, assistant: NewsAssistant):
    import gradio as gr

    # Gradio stores every upload under its upload folder (GRADIO_TEMP_DIR, set by
    # configure_uploads to the app's own folder); the ingest reads nothing else.
    upload_root = Path(gr.utils.get_upload_folder()).resolve()
    # Conversation downloads are written where Gradio may serve files from (its temp folder).
    export_dir = Path(tempfile.gettempdir()) / "news-assistant-exports"
    export_dir.mkdir(parents=True, exist_ok=True)

    def respond(message, chat, turns, since, until, sites, as_of):
        chat = list(chat or [])
        turns = list(turns or [])  # the Answer of each turn so far
        message = (message or "").strip()
        if not message:
            yield chat, gr.skip(), turns, "", gr.skip()
            return
        chat += [{"role": "user", "content": html.escape(message)}, {"role": "assistant", "content": "…"}]
        yield chat, gr.skip(), turns, "", gr.skip()
        try:
            filters, asked_on = parse_filters(since, until, sites), parse_as_of(as_of)
        except AssistantError as exc:
            chat[-1]["content"] = f"Sorry, that did not work: {html.escape(str(exc))}"
            yield chat, gr.skip(), turns, "", gr.skip()
            return
        history = [answer.exchange for answer in turns]  # for the follow-up rewrite
        for piece in stream_answer(assistant, message, history, filters, asked_on):
            if isinstance(piece, Answer):
                chat[-1]["content"] = render_answer(piece, refusal_note(piece, filters, asked_on), len(turns) + 1)
                turns.append(piece)
                export = gr.update(value=write_export(turns, asked_on), visible=True)
                yield chat, render_conversation_sources(turns), turns, "", export
            else:
                chat[-1]["content"] = html.escape(piece)
                yield chat, gr.skip(), turns, "", gr.skip()

    def write_export(answers: list[Answer], asked_on: dt.date) -> str:
        # A new file per answer: Gradio serves (and caches) a file by its path. Those of past days go.
        remove_files_older_than(export_dir, KEEP_FILES_S)
        path = export_dir / f"conversation-{uuid.uuid4().hex[:12]}.md"
        path.write_text(conversation_markdown(answers, asked_on), encoding="utf-8")
        return str(path)

    def new_conversation():
        return [], render_sources(None), [], "", gr.update(value=None, visible=False)

    def chat_api(message: str) -> str:
        """Text answer with its sources listed (Markdown)."""
        final = None
        for piece in stream_answer(assistant, message):
            final = piece
        if isinstance(final, Answer):
            return final.answer + "\n" + format_sources(final)
        return str(final)

    def ask_api(question: str, since: str = "", until: str = "", sites: str = "", as_of: str = "") -> dict:
        """The same JSON object as `python -m assistant ask --json` (``as_of`` "" = today, as there)."""
        try:
            return assistant.ask(question, filters=parse_filters(since, until, sites),
                                 as_of=parse_as_of(as_of)).as_dict()
        except AssistantError as exc:
            return {"question": question, "error": str(exc)}

    def stats_text() -> str:
        try:
            stats = assistant.store.stats()
        except AssistantError as exc:
            return f"Index unavailable: {html.escape(str(exc))}"
        return (f"**{stats.articles:,}** articles · **{stats.chunks:,}** chunks · **{len(stats.sites)}** sites · "
                f"{stats.earliest or '–'} to {stats.latest or '–'}")

    def article_rows(query: str = ""):
        query = (query or "").strip().lower()
        rows = [[a["title"], a["site"], a["published"], a["url"], a["id"]] for a in assistant.store.articles()
                if query in a["title"].lower()]
        return rows[:ARTICLE_ROWS]

    def site_choices():
        try:
            return gr.update(choices=assistant.store.stats().sites)
        except AssistantError:
            return gr.update(choices=[])

    def ingest(files, progress=gr.Progress(track_tqdm=True)):
        paths = []
        for file in files or []:
            path = Path(getattr(file, "name", file)).resolve()
            # Uploads are stored by Gradio under the app's upload folder; nothing else is read.
            if not path.is_relative_to(upload_root):
                return "Refused: that file is not an upload of this app.", stats_text(), article_rows(), site_choices()
            paths.append(path)
        if not paths:
            return "Choose article files first.", stats_text(), article_rows(), site_choices()
        loader = ArticleLoader(max_article_bytes=settings.max_article_bytes)
        try:
            articles = list(loader.load(paths))
            report = assistant.store.ingest(articles, show_progress=True) if articles else None
        except AssistantError as exc:
            return f"Ingest failed: {html.escape(str(exc))}", stats_text(), article_rows(), site_choices()
        lines = [html.escape(report.summary()) if report else "No article could be read."]
        lines += [f"- skipped {html.escape(str(p))}" for p in loader.problems + (report.problems if report else [])]
        lines += [f"- {html.escape(str(note))}" for note in loader.notes]
        return "\n".join(lines), stats_text(), article_rows(), site_choices()

    def pick_article(evt):
        """The clicked row's article id; choosing a row cancels a removal waiting for its second click."""
        row = evt.row_value or []
        return (row[ARTICLE_ID_COLUMN] if len(row) > ARTICLE_ID_COLUMN else ""), "", ""

    # Gradio hands the selection to a parameter annotated gr.SelectData; with postponed annotations
    # and gradio imported here, not at module level, the annotation must be the class itself.
    pick_article.__annotations__["evt"] = gr.SelectData

    def remove_article(article_id: str, pending: str, query: str):
        """Two clicks remove: the first names the article and asks for the second (a removal cannot be
        undone from here; the article's file has to be ingested again)."""
        article_id = (article_id or "").strip()
        unchanged = (gr.skip(), gr.skip(), gr.skip(), gr.skip())
        if not article_id:
            return ("Choose an article first (click its row).", *unchanged, "")
        try:
            chosen = assistant.store.select_articles(ArticleSelection(ids=(article_id,)))
            if not chosen:
                return (f"Not in the index: {html.escape(article_id)}", stats_text(), article_rows(query),
                        site_choices(), "", "")
            title = html.escape(chosen[0]["title"])
            if pending != article_id:
                return (f"Remove **{title}** from the index? Click \"Remove from index\" again to confirm.",
                        *unchanged, article_id)
            chunks = assistant.store.remove([article_id])
        except AssistantError as exc:
            return (f"Remove failed: {html.escape(str(exc))}", *unchanged, "")
        status = f"Removed {title} ({chunks} chunks). Ingest its file again to restore it."
        return status, stats_text(), article_rows(query), site_choices(), "", ""

    # Gradio's own copies of uploads and downloads (in upload_dir) are deleted a day after they were
    # made, checked every hour: uploaded articles are in the index by then.
    with gr.Blocks(title="News assistant", delete_cache=(3600, KEEP_FILES_S)) as app:
        turns = gr.State([])  # each Answer of the conversation: its history, sources panel and download
        gr.Markdown("## News assistant\nAnswers come from the indexed articles only, each claim with a numbered citation.")
        with gr.Tab("Ask"):
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(label="Conversation", elem_id="chat", height=480, sanitize_html=True)
                    question = gr.Textbox(label="Question", placeholder="Ask about the articles…", elem_id="question")
                    with gr.Row():
                        send = gr.Button("Ask", variant="primary", elem_id="ask-button")
                        clear = gr.Button("New conversation", elem_id="new-conversation")
                    download = gr.DownloadButton("Download conversation (Markdown, with sources)", visible=False,
                                                 size="sm", elem_id="download-conversation")
                    gr.Examples(EXAMPLES, inputs=question, label="Examples")
                    with gr.Accordion("Filters", open=False):
                        with gr.Row():
                            since = gr.Textbox(label="From (YYYY-MM-DD)", elem_id="since")
                            until = gr.Textbox(label="To (YYYY-MM-DD)", elem_id="until")
                        sites = gr.Dropdown(label="Sites", multiselect=True, choices=[], elem_id="sites")
                        as_of = gr.Textbox(label="As of (YYYY-MM-DD; empty: today)", elem_id="as-of",
                                           info="The day the question is asked: later articles are left out, "
                                                "recent ones preferred.")
                with gr.Column(scale=2):
                    gr.Markdown("### Sources")
                    sources = gr.HTML(render_sources(None), elem_id="sources")
        with gr.Tab("Corpus"):
            stats = gr.Markdown(elem_id="stats")
            with gr.Row():
                files = gr.File(label="Article files", file_count="multiple", file_types=UPLOAD_TYPES, elem_id="upload")
                with gr.Column():
                    ingest_button = gr.Button("Ingest", variant="primary", elem_id="ingest-button")
                    ingest_status = gr.Markdown(elem_id="ingest-status")
            search = gr.Textbox(label="Search titles", elem_id="title-search")
            articles = gr.Dataframe(headers=["title", "site", "published", "url", "id"], datatype="str",
                                    interactive=False, elem_id="articles")
            with gr.Row():
                selected = gr.Textbox(label="Selected article id (click a row)", interactive=False,
                                      elem_id="selected-article")
                remove_button = gr.Button("Remove from index", variant="stop", elem_id="remove-button")
            remove_status = gr.Markdown(elem_id="remove-status")
            pending_removal = gr.State("")  # the article id the first click of "Remove" named

        inputs = [question, chatbot, turns, since, until, sites, as_of]
        outputs = [chatbot, sources, turns, question, download]
        send.click(respond, inputs, outputs, api_visibility="private")
        question.submit(respond, inputs, outputs, api_visibility="private")
        clear.click(new_conversation, None, outputs, api_visibility="private")
        ingest_button.click(ingest, files, [ingest_status, stats, articles, sites], api_visibility="private")
        search.change(article_rows, search, articles, api_visibility="private")
        articles.select(pick_article, None, [selected, pending_removal, remove_status], api_visibility="private")
        remove_button.click(remove_article, [selected, pending_removal, search],
                            [remove_status, stats, articles, sites, selected, pending_removal],
                            api_visibility="private")
        app.load(lambda: (stats_text(), article_rows(), site_choices()), None, [stats, articles, sites],
                 api_visibility="private")
        gr.api(ask_api, api_name="ask")
        gr.api(chat_api, api_name="chat")
    return app


def launch(settings: Settings, assistant: NewsAssistant, **launch_kwargs):
    auth = None
    if settings.ui_host not in LOCAL_HOSTS:
        if not (settings.ui_username and settings.ui_password):
            raise AssistantError(
                f"serving on {settings.ui_host} needs a login; set {env_name('ui_username')} and {env_name('ui_password')}"
            )
        auth = (settings.ui_username, settings.ui_password)
    app = build_app(settings, assistant)
    app.queue(default_concurrency_limit=4)
    return app.launch(server_name=settings.ui_host, server_port=settings.ui_port, auth=auth, head=HEAD, css=CSS,
                      max_file_size=MAX_UPLOAD, **launch_kwargs)


def configure_uploads(settings: Settings) -> None:
    """Keep Gradio's uploads in the app's own folder. Gradio reads GRADIO_TEMP_DIR when it is
    imported, so this runs before anything imports gradio."""
    upload_dir = Path(settings.upload_dir).resolve()
    upload_dir.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(upload_dir)
