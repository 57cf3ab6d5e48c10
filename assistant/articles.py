"""Load news articles from files and folders into normalized ``Article`` records.

Formats (by file extension, ``.gz`` allowed on any of them):
- ``.md``/``.markdown``/``.txt``: optional YAML front matter between ``---`` lines
  (``id``, ``title``, ``url``, ``site``, ``published``, ``authors``); without a
  ``title`` the first line is the title.
- ``.html``/``.htm``: body, title, site and date extracted with trafilatura.
- ``.jsonl``/``.ndjson``/``.json``: one article per object (a JSON file may hold
  one object or a list); ``text`` is required.

Problems with one file or one line never stop the others: they are collected
as ``LoadProblem``s (file, line, reason) for the caller to report.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlparse

import yaml

from .errors import AssistantError

TEXT_SUFFIXES = {".md", ".markdown", ".txt"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
JSON_SUFFIXES = {".json"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES | JSON_SUFFIXES
MAX_TITLE_CHARS = 200


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    text: str
    url: str | None = None
    site: str | None = None
    published: str | None = None  # ISO date, YYYY-MM-DD
    authors: tuple[str, ...] = ()
    source: str = ""  # file (and line) it came from, for messages
    unreadable_date: str | None = None  # a published value that is not a date (the article is kept undated)


@dataclass(frozen=True)
class LoadProblem:
    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason}"


@dataclass
class ArticleLoader:
    """Yields articles from paths; ``problems`` collects what was skipped and why."""

    max_article_bytes: int = 5_000_000
    problems: list[LoadProblem] = field(default_factory=list)
    notes: list[LoadProblem] = field(default_factory=list)  # articles kept, with something to say about them

    def load(self, paths: Iterable[str | Path]) -> Iterator[Article]:
        for path in paths:
            path = Path(path)
            if not path.exists():
                raise AssistantError(f"{path}: no such file or folder")
            files = sorted(self._files_under(path)) if path.is_dir() else [path]
            if path.is_file() and _suffix(path) not in SUPPORTED_SUFFIXES:
                self._problem(path, None, f"unsupported file type '{_suffix(path) or path.name}' "
                              f"(supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}, optionally .gz)")
                continue
            for file in files:
                yield from self._load_file(file)

    # -- files -----------------------------------------------------------
    def _files_under(self, folder: Path) -> Iterator[Path]:
        root = folder.resolve()
        for file in folder.rglob("*"):
            hidden = any(part.startswith(".") for part in file.relative_to(folder).parts)
            if not file.is_file() or hidden or _suffix(file) not in SUPPORTED_SUFFIXES:
                continue
            # A link inside a corpus folder must not pull in files from elsewhere (a shared
            # upload or corpus folder could otherwise expose any file the process can read).
            if not file.resolve().is_relative_to(root):
                self._problem(file, None, f"links outside the folder {folder} (to {file.resolve()}); skipped")
                continue
            yield file

    def _problem(self, path: Path | str, line: int | None, reason: str) -> None:
        self.problems.append(LoadProblem(str(path), line, reason))

    def _load_file(self, path: Path) -> Iterator[Article]:
        suffix = _suffix(path)
        try:
            if suffix in JSONL_SUFFIXES:
                yield from self._load_jsonl(path)
                return
            raw = self._read_bytes(path)
            if raw is None:
                return
            if suffix in HTML_SUFFIXES:
                article = _parse_html(raw, path)
                if article is None:
                    self._problem(path, None, "no article text found in the HTML page")
                else:
                    yield article
            elif suffix in JSON_SUFFIXES:
                yield from self._load_json(path, raw)
            else:
                text = self._decode(path, raw)
                if text is not None:
                    yield from self._checked([_parse_text_article(text, path)], path)
        except OSError as exc:  # unreadable, truncated gzip, ...
            self._problem(path, None, f"cannot read file ({exc.strerror or exc})")
        except EOFError:
            self._problem(path, None, "cannot read file (compressed data ends early)")

    def _read_bytes(self, path: Path) -> bytes | None:
        limit = self.max_article_bytes
        with _open_binary(path) as handle:
            raw = handle.read(limit + 1)
        if len(raw) > limit:
            self._problem(path, None, f"file is larger than {limit:,} bytes (setting max_article_bytes); "
                          "split it or use JSON Lines")
            return None
        if not raw.strip():
            self._problem(path, None, "file is empty")
            return None
        if b"\x00" in raw[:8192]:
            self._problem(path, None, "binary file, not an article (expected text, HTML or JSON)")
            return None
        return raw

    def _decode(self, path: Path, raw: bytes, line: int | None = None) -> str | None:
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self._problem(path, line, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          "re-save the file as UTF-8")
            return None

    def _load_jsonl(self, path: Path) -> Iterator[Article]:
        seen_any_line = False
        with _open_binary(path) as handle:
            if not _looks_textual(handle.peek(8192) if hasattr(handle, "peek") else b""):
                self._problem(path, None, "binary file, not JSON Lines")
                return
            for number, raw_line in enumerate(handle, start=1):
                if not raw_line.strip():
                    continue
                seen_any_line = True
                if len(raw_line) > self.max_article_bytes:
                    self._problem(path, number, f"line is larger than {self.max_article_bytes:,} bytes; skipped")
                    continue
                line = self._decode(path, raw_line, number)
                if line is None:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    self._problem(path, number, f"malformed JSON ({exc.msg} at column {exc.colno}); line skipped")
                    continue
                yield from self._checked([self._from_record(record, path, number)], path, number)
        if not seen_any_line:
            self._problem(path, None, "file is empty")

    def _load_json(self, path: Path, raw: bytes) -> Iterator[Article]:
        text = self._decode(path, raw)
        if text is None:
            return
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            self._problem(path, exc.lineno, f"malformed JSON ({exc.msg} at column {exc.colno})")
            return
        records = data if isinstance(data, list) else [data]
        for position, record in enumerate(records, start=1):
            yield from self._checked([self._from_record(record, path, None, position)], path)

    def _from_record(self, record: Any, path: Path, line: int | None, position: int | None = None) -> Article | str:
        where = f"{path}:{line}" if line else (f"{path}#{position}" if position else str(path))
        if not isinstance(record, dict):
            return "expected a JSON object with a 'text' field"
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            return "article has no text (field 'text' missing or empty)"
        return make_article(
            text=text,
            title=record.get("title"),
            article_id=record.get("id"),
            url=record.get("url"),
            site=record.get("site"),
            published=record.get("published"),
            authors=record.get("authors"),
            source=where,
        )

    def _checked(self, results: list[Article | str], path: Path, line: int | None = None) -> Iterator[Article]:
        for result in results:
            if isinstance(result, str):
                self._problem(path, line, result + ("; line skipped" if line else ""))
            else:
                if result.unreadable_date:
                    self.notes.append(LoadProblem(str(path), line, f"published '{result.unreadable_date}' is not a "
                                                  "date; the article is kept without one"))
                yield result


# -- parsing helpers ---------------------------------------------------------
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def _parse_text_article(text: str, path: Path) -> Article | str:
    meta: dict[str, Any] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            return f"front matter is not valid YAML{f' (line {mark.line + 2})' if mark else ''}"
        if not isinstance(loaded, dict):
            return "front matter must be 'key: value' lines"
        meta, text = loaded, text[match.end():]
    body = text.strip()
    title = meta.get("title")
    if not title and body:
        first, _, rest = body.partition("\n")
        first = first.strip().lstrip("#").strip()
        if len(first) <= MAX_TITLE_CHARS and rest.strip():
            title, body = first, rest.strip()
        else:  # a first line that is a paragraph is not a headline: keep it in the text
            title = " ".join(first.split()[:12]) + " ..."
    if not body:
        return "article has no text"
    return make_article(
        text=body,
        title=title,
        article_id=meta.get("id"),
        url=meta.get("url"),
        site=meta.get("site"),
        published=meta.get("published", meta.get("date")),
        authors=meta.get("authors", meta.get("author")),
        source=str(path),
        fallback_id=f"file:{path.resolve()}",
    )


def _parse_html(raw: bytes, path: Path) -> Article | None:
    import trafilatura  # imported here: it is slow to import and only HTML needs it

    # trafilatura decodes bytes itself (meta charset, then detection), so pages
    # in legacy encodings load too.
    doc = trafilatura.bare_extraction(raw, with_metadata=True, include_comments=False)
    if doc is None or not (doc.text or "").strip():
        return None
    authors = [a.strip() for a in (doc.author or "").split(";") if a.strip()]
    article = make_article(
        text=doc.text,
        title=doc.title,
        url=doc.url,
        site=doc.sitename,
        published=doc.date,
        authors=authors,
        source=str(path),
        fallback_id=f"file:{path.resolve()}",
    )
    return article


def make_article(
    *,
    text: str,
    title: Any = None,
    article_id: Any = None,
    url: Any = None,
    site: Any = None,
    published: Any = None,
    authors: Any = None,
    source: str = "",
    fallback_id: str | None = None,
) -> Article:
    """Normalize metadata; the id is the article's own, else its URL, else the file, else a content hash."""
    text = text.replace("\r\n", "\n").strip()
    title = _clean_str(title) or ""
    url = _clean_str(url)
    site = _clean_str(site) or _site_from_url(url)
    article_id = _clean_str(article_id) or url or fallback_id or content_id(title, text)
    given, day = _clean_str(published), normalize_date(published)
    return Article(
        id=article_id,
        title=title,
        text=text,
        url=url,
        site=site,
        published=day,
        authors=_normalize_authors(authors),
        source=source,
        unreadable_date=given if given and day is None else None,
    )


def content_id(title: str, text: str) -> str:
    return "sha256-" + hashlib.sha256(f"{title}\n{text}".encode("utf-8")).hexdigest()[:16]


def normalize_date(value: Any) -> str | None:
    """An ISO date (YYYY-MM-DD) from a date, datetime, epoch seconds or a date string; None if unknown."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc).date().isoformat()
    if isinstance(value, str):
        from dateutil import parser as date_parser

        try:
            return date_parser.parse(value.strip(), default=dt.datetime(2000, 1, 1)).date().isoformat()
        except (ValueError, OverflowError):
            return None
    return None


def _clean_str(value: Any) -> str | None:
    if value is None:
        return None
    value = " ".join(str(value).split())
    return value or None


def _site_from_url(url: str | None) -> str | None:
    if not url:
        return None
    host = urlparse(url).netloc.lower()
    return host.removeprefix("www.") or None


def _normalize_authors(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        value = re.split(r"\s*(?:,|;|\band\b)\s*", value)
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(a for a in (_clean_str(v) for v in value) if a)


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        return suffixes[-2] if len(suffixes) > 1 else ""
    return suffixes[-1] if suffixes else ""


def _open_binary(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _looks_textual(head: bytes) -> bool:
    return b"\x00" not in head[:8192]
