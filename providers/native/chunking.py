"""A thing's text, and that text as overlapping chunks: what the knowledge of kind `chunk` is
made of (the indexer, `gateway/indexer.py`, keeps it up to date).

Tokens are counted by a regular expression, a word (`\\w+`) or a single punctuation mark each,
not by a model's tokenizer (none can be downloaded where the gateway runs): close to what
embedding models count for English prose, fewer for code and for scripts without spaces.

A chunk is a run of whole sentences of at most `size` tokens, ending at a paragraph's end when
that leaves it at least half full; the last sentences of a chunk (up to `overlap` tokens, and
at least one of them when it is no longer than half a chunk) begin the next one. A sentence
longer than a chunk is cut between tokens. A chunk's id is a hash of its organization, source
and text, so an edit leaves the ids, and the embeddings, of the chunks it did not touch.

Example:
    for chunk in chunks(thing_text(post), org_id=org, source_ref=ref):
        print(chunk.position, chunk.id, chunk.text)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from providers import validation
from providers.errors import InvalidInputError
from providers.records import Thing
from providers.snippets import html_text, plain_text

__all__ = [
    "Chunk",
    "chunks",
    "count_tokens",
    "html_text",
    "thing_labels",
    "thing_text",
    "type_label",
]

# The properties that hold a thing's text, in the order it is read, whichever provider holds
# it: native things (content, body, text, description, excerpt), WordPress posts and pages
# (content, excerpt, rendered HTML), Shopify products (description_html), Notion pages
# (content: the page's blocks, one paragraph each, when loaded with detail).
TEXT_PROPERTIES = ("content", "body", "text", "description", "description_html", "excerpt")
MAX_CHUNKS = 2_000  # of one thing: about 400,000 tokens, a long book

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# A sentence ends at a line break, or at . ! ? (and closing quotes) before a space.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)|\n")
_ELLIPSIS = re.compile(r"\s*(?:\[(?:…|\.\.\.)\]|…|\.\.\.)$")  # an excerpt's trailing one


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str  # stable: a hash of (organization, source, text)
    position: int  # 0, 1, 2... in the source's text
    text: str
    tokens: int


def count_tokens(text: str) -> int:
    """Words and punctuation marks: the measure of `chunks` (see the module docstring)."""
    return len(_TOKEN.findall(text))


def thing_text(thing: Thing) -> str:
    """The thing's name, then its text properties as plain text (HTML made text, an excerpt
    the content already holds left out); "" for a thing without text, whose name alone is no
    knowledge (`search` finds things by name)."""
    parts: list[str] = []
    for key in TEXT_PROPERTIES:
        value = thing.properties.get(key)
        if not isinstance(value, str) or not value.strip():
            continue
        text = plain_text(value)
        flat = _ELLIPSIS.sub("", " ".join(text.split()))
        if flat and not any(flat in " ".join(p.split()) for p in parts):
            parts.append(text)
    if not parts:
        return ""
    return "\n\n".join([thing.name.strip(), *parts]) if thing.name.strip() else "\n\n".join(parts)


def thing_labels(thing: Thing) -> list[str]:
    """The labels of a thing's chunks: where they came from (`type:blog_post`,
    `provider:wordpress`, `status:published`) and a `tag:<tag>` for each of its tags that
    makes a valid label."""
    labels = [type_label(thing.type), f"provider:{thing.provider}", f"status:{thing.status.value}"]
    tags = thing.properties.get("tags")
    for tag in tags if isinstance(tags, list) else ():
        if isinstance(tag, str) and tag.strip():
            try:
                labels.append(validation.name(f"tag:{tag.strip()}", "labels"))
            except InvalidInputError:
                continue  # too long, or with control characters: it labels nothing
    return list(dict.fromkeys(labels))


def type_label(type: str) -> str:
    """The label that names the type of the thing a chunk came from."""
    return f"type:{type}"


def chunks(
    text: str, *, org_id: str, source_ref: str, size: int = 200, overlap: int = 40
) -> list[Chunk]:
    """`text` as chunks of at most `size` tokens, each repeating up to `overlap` tokens of
    the one before (see the module docstring); at most `MAX_CHUNKS` of them."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"chunks need 0 <= overlap < size, not size={size}, overlap={overlap}")
    units = _sentences(text, piece=overlap or size, size=size)
    found: list[Chunk] = []
    seen: dict[str, int] = {}
    for start, end in _pack(units, size, overlap)[:MAX_CHUNKS]:
        body = text[units[start].start : units[end - 1].end]
        occurrence = seen.get(body, 0)  # a passage repeated in one text: one id each time
        seen[body] = occurrence + 1
        tokens = sum(u.tokens for u in units[start:end])
        found.append(Chunk(_id(org_id, source_ref, body, occurrence), len(found), body, tokens))
    return found


# -- steps ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence (or a piece of a long one): where it lies in the text, and its tokens."""

    start: int
    end: int
    tokens: int
    ends_paragraph: bool


def _sentences(text: str, *, piece: int, size: int) -> list[_Unit]:
    units: list[_Unit] = []
    for p_start, p_end in _spans(text, _PARAGRAPH_BREAK, 0, len(text)):
        found: list[_Unit] = []
        for s_start, s_end in _spans(text, _SENTENCE_END, p_start, p_end, keep=True):
            tokens = [m.span() for m in _TOKEN.finditer(text, s_start, s_end)]
            if len(tokens) <= size:
                found.append(_Unit(s_start, s_end, len(tokens), False))
                continue
            for at in range(0, len(tokens), piece):
                run = tokens[at : at + piece]
                found.append(_Unit(run[0][0], run[-1][1], len(run), False))
        if found:
            last = found[-1]
            found[-1] = _Unit(last.start, last.end, last.tokens, True)
            units += found
    return units


def _spans(
    text: str, separator: re.Pattern[str], start: int, end: int, *, keep: bool = False
) -> list[tuple[int, int]]:
    """The stripped, non-empty spans of `text[start:end]` between matches of `separator`
    (each span keeping its separator when `keep`)."""
    spans: list[tuple[int, int]] = []
    at = start
    for match in separator.finditer(text, start, end):
        spans.append((at, match.end() if keep else match.start()))
        at = match.end()
    spans.append((at, end))
    stripped = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b and _WORD.search(text, a, b):  # punctuation alone says nothing
            stripped.append((a, b))
    return stripped


def _pack(units: list[_Unit], size: int, overlap: int) -> list[tuple[int, int]]:
    """Runs of units, as (first, past the last) indexes: one per chunk."""
    runs: list[tuple[int, int]] = []
    start = 0
    while start < len(units):
        end, count = start, 0
        while end < len(units) and (end == start or count + units[end].tokens <= size):
            count += units[end].tokens
            end += 1
        if end < len(units):
            filled = 0
            for at in range(start, end - 1):
                filled += units[at].tokens
                if units[at].ends_paragraph and filled * 2 >= size:
                    end = at + 1  # the last paragraph's end that leaves it half full
            runs.append((start, end))
        else:
            runs.append((start, end))
            break
        back, count = end, 0
        while back - 1 > start and (
            count + units[back - 1].tokens <= overlap
            or (back == end and overlap and units[back - 1].tokens * 2 <= size)
        ):
            back -= 1
            count += units[back].tokens
        start = back
    return runs


def _id(org_id: str, source_ref: str, text: str, occurrence: int) -> str:
    key = "\0".join((org_id, source_ref, str(occurrence), text))
    return hashlib.sha256(key.encode()).hexdigest()[:32]
