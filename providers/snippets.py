"""Search snippets: the passage of a text that best shows why it matched a query.

A snippet is HTML: the text is escaped and each word that matched is wrapped in `<mark>`, so a
client can put it into a page as it is. The native store's full-text index makes its own (the
same format); hits from upstreams, which answer with whole records, get theirs here, from the
thing's text as `providers.native.chunking.thing_text` reads it.
"""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser
from typing import Any

_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_WHITESPACE = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")
_MARKUP = re.compile(r"<[A-Za-z/!][^>]*>|&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);")


def fold(word: str) -> str:
    """A word as search compares it: case and diacritics set aside."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def query_words(query: str) -> list[str]:
    """The words of a free-text query, composed (NFC) as the engines index text, each once
    (case and diacritics aside): everything else in it is spacing, never syntax."""
    words: dict[str, str] = {}
    for word in _WORD.findall(unicodedata.normalize("NFC", query)):
        words.setdefault(fold(word), word)
    return list(words.values())


def terms(query: str) -> list[str]:
    """The query's words as search compares them (`fold`): what a snippet marks."""
    return [fold(word) for word in query_words(query)]


def highlight(text: str, query: str, *, words: int = 24) -> str:
    """About `words` words of `text` around its matches of `query`, escaped, matches marked.

    A word matches when it starts with one of the query's words (so "hammock" finds
    "hammocks"); the window is the one holding the most distinct query words."""
    wanted = terms(query)
    tokens = list(_WORD.finditer(text))
    if not tokens:
        return html.escape(text[:200])
    hits = [
        next((t for t in wanted if fold(m.group()).startswith(t)), None) if wanted else None
        for m in tokens
    ]
    best, best_score = 0, -1
    for start in range(0, max(len(tokens) - words, 0) + 1):
        score = len({h for h in hits[start : start + words] if h is not None})
        if score > best_score:
            best, best_score = start, score
        if best_score == len(wanted):
            break
    # Lead in with a few words before the first match, as a reader would.
    first_hit = next((i for i in range(best, len(tokens)) if hits[i] is not None), best)
    start = max(min(first_hit - 3, len(tokens) - words), 0)
    end = min(start + words, len(tokens))
    out: list[str] = ["…"] if start > 0 else []
    at = tokens[start].start()
    for i in range(start, end):
        token = tokens[i]
        out.append(html.escape(_SPACE.sub(" ", text[at : token.start()])))
        word = html.escape(token.group())
        out.append(f"<mark>{word}</mark>" if hits[i] is not None else word)
        at = token.end()
    if end < len(tokens):
        out.append(" …")
    else:
        out.append(html.escape(_SPACE.sub(" ", text[at:]).rstrip()))
    return "".join(out).strip()


def plain_text(text: str) -> str:
    """Text that may be HTML (a WordPress post, a Shopify description) as plain text:
    paragraphs apart, spaces single."""
    return html_text(text) if _MARKUP.search(text) else plain_lines(text)


def html_text(html: str) -> str:
    """The text of an HTML fragment: block elements become paragraphs, `<br>` and list items
    lines; scripts and styles are dropped, entities decoded."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return plain_lines("".join(parser.parts))


def plain_lines(text: str) -> str:
    """Spaces made single and trimmed on each line, at most one blank line in a row."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "details",
        "div",
        "dl",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "ul",
    }
)
_LINES = frozenset({"br", "dd", "dt", "li", "tr"})
_HIDDEN = frozenset({"script", "style", "template", "noscript", "head"})


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._tag(tag, opening=True)

    def handle_endtag(self, tag: str) -> None:
        self._tag(tag, opening=False)

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        if tag not in _HIDDEN:
            self._tag(tag, opening=True)

    def _tag(self, tag: str, *, opening: bool) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden + (1 if opening else -1))
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
            if tag == "pre":
                self._pre = max(0, self._pre + (1 if opening else -1))
        elif tag in _LINES and opening:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            # Outside <pre>, HTML's line breaks are spaces: only its elements make lines.
            self.parts.append(data if self._pre else _WHITESPACE.sub(" ", data))
