"""Hypothesis strategies for hostile API Gateway requests, an independent reading of the form
they carry, and the checks every answer of every page must pass.

Shared by the fuzz tests of the fulfillment URL and the sign-up page. The form reading here
follows the application/x-www-form-urlencoded rules (WHATWG URL, "urlencoded parser"), not
fulfillment.forms, so the tests can tell when the function reads a form differently.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import re
import string
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote_plus, urlencode

from hypothesis import strategies as st

from tests.events import rest_event

FORM = "application/x-www-form-urlencoded"
METHODS = ("GET", "POST", "PUT", "HEAD")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# No page is more than this without echoed input.
PAGE_BYTES = 8 * 1024

MARKUP = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg/onload=alert(1)>",
    "</textarea><b>x</b>",
    "<!--",
    "&lt;already&gt;",
    "javascript:alert(1)",
)

# ---------------------------------------------------------------------------- strategies

# Every kind of character, lone surrogates included (a JSON event can carry "\ud800").
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
ascii_text = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=40)
hostile_text = st.one_of(any_text, ascii_text, st.sampled_from(MARKUP))

charsets = st.one_of(
    st.sampled_from(
        [
            "utf-8",
            "UTF-8",
            '"utf-8"',
            "iso-8859-1",
            "latin1",
            "us-ascii",
            "windows-1252",
            "utf-16",
            "utf-32",
            "cp037",
            "rot13",
            "base64",
            "hex",
            "zlib",
            "idna",
            "no-such-charset",
            "",
        ]
    ),
    ascii_text,
)


@st.composite
def content_types(draw: st.DrawFn) -> str | None:
    kind = draw(st.sampled_from(["form", "form", "form", "json", "multipart", "other", "none"]))
    if kind == "none":
        return None
    if kind == "json":
        return "application/json"
    if kind == "multipart":
        return "multipart/form-data; boundary=----x"
    if kind == "other":
        return draw(ascii_text)
    media = "".join(
        c.upper() if draw(st.booleans()) else c for c in FORM
    )  # media types are case-insensitive
    if draw(st.booleans()):
        return media
    spacing = draw(st.sampled_from(["; ", ";", " ; "]))
    return f"{media}{spacing}charset={draw(charsets)}"


@st.composite
def form_bodies(
    draw: st.DrawFn, names: st.SearchStrategy[str], values: st.SearchStrategy[str]
) -> str:
    """A form-encoded body: random fields, as a browser would encode them, or raw."""
    fields = draw(st.lists(st.tuples(names, values), max_size=8))
    if draw(st.booleans()):
        # A browser's encoding of the fields (UTF-8); lone surrogates cannot be encoded.
        encodable = [(n, v) for n, v in fields if _utf8(n) and _utf8(v)]
        return urlencode(encodable)
    return "&".join(f"{n}={v}" for n, v in fields)  # unencoded: whatever arrived


def _utf8(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


@st.composite
def bodies(draw: st.DrawFn, form: st.SearchStrategy[str]) -> tuple[str | None, bool]:
    """(event body, isBase64Encoded): text, binary, huge, form-encoded; valid base64 or not."""
    kind = draw(st.sampled_from(["none", "text", "binary", "huge", "form", "form", "form"]))
    if kind == "none":
        return draw(st.sampled_from([None, ""])), draw(st.booleans())
    if kind == "binary":
        raw = draw(st.binary(max_size=200))
        if draw(st.booleans()):
            return base64.b64encode(raw).decode(), True
        return raw.decode("utf-8", errors="surrogateescape"), False
    if kind == "huge":
        # Up to ~300 KB, built by repetition (hypothesis would take ages to draw it).
        unit = draw(st.one_of(form, st.text(min_size=1, max_size=20)))
        repeat = draw(st.integers(1, 300_000 // max(len(unit), 1)))
        body = (unit or "a") * repeat
    else:
        body = draw(any_text if kind == "text" else form)
    if draw(st.booleans()) and _utf8(body):
        return base64.b64encode(body.encode()).decode(), True
    return body, draw(st.booleans())  # base64 flag on plain text: usually invalid base64


header_names = st.one_of(
    st.sampled_from(["Host", "X-Forwarded-Host", "Origin", "Referer", "Cookie", "Accept"]),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20),
).filter(lambda name: name.lower() != "content-type")


@st.composite
def header_sets(draw: st.DrawFn, content_type: str | None) -> tuple[Any, Any]:
    """(headers, multiValueHeaders): None, empty or random, one Content-Type in any case."""
    if content_type is None and draw(st.booleans()):
        return draw(st.sampled_from([None, {}])), draw(st.sampled_from([None, {}]))
    multi: dict[str, list[str]] = {
        name: draw(st.lists(hostile_text, min_size=1, max_size=3))
        for name in draw(st.lists(header_names, max_size=6, unique_by=str.lower))
    }
    if content_type is not None:
        name = draw(st.sampled_from(["content-type", "Content-Type", "CONTENT-TYPE"]))
        multi[name] = [content_type]
        if draw(st.booleans()):
            # A second Content-Type header line: API Gateway keeps the last in ``headers``.
            multi[name].insert(0, draw(st.sampled_from([FORM, "application/json"])))
    headers = {name: values[-1] for name, values in multi.items()}
    return headers, multi


@st.composite
def query_strings(
    draw: st.DrawFn, names: st.SearchStrategy[str], values: st.SearchStrategy[str]
) -> dict[str, list[str]] | None:
    fields = draw(st.lists(st.tuples(names, values), max_size=4))
    if not fields:
        return None
    query: dict[str, list[str]] = {}
    for name, value in fields:
        query.setdefault(name, []).append(value)
    return query


@st.composite
def requests(
    draw: st.DrawFn,
    names: st.SearchStrategy[str],
    values: st.SearchStrategy[str] = hostile_text,
) -> dict[str, Any]:
    """A real-shaped REST proxy event with everything a client controls drawn at random."""
    content_type = draw(content_types())
    body, base64_encoded = draw(bodies(form_bodies(names, values)))
    event = rest_event(method=draw(st.sampled_from(METHODS)), body=None, content_type=None)
    event["body"], event["isBase64Encoded"] = body, base64_encoded
    event["headers"], event["multiValueHeaders"] = draw(header_sets(content_type))
    query = draw(query_strings(names, values))
    if query is not None:
        event["multiValueQueryStringParameters"] = query
        event["queryStringParameters"] = {name: vs[-1] for name, vs in query.items()}
    if draw(st.booleans()):
        # What the client chose as the path shows up in requestContext.path.
        event["requestContext"]["path"] = draw(
            st.one_of(
                st.sampled_from(["//evil.example/", "/\\evil.example/", "/prod//", "https://x/"]),
                any_text,
            )
        )
    if draw(st.booleans()):
        event["requestContext"]["requestId"] = draw(hostile_text)
    return event


# ---------------------------------------------------------------------------- the form oracle


@dataclass(frozen=True)
class FormReading:
    """What an independent reader makes of the event's fields.

    ``rejected``: the body is a form that cannot be read (or is too large) -> nothing may be
    registered. ``certain``: False for charsets that are not ASCII-compatible, where the exact
    decoding is the reader's choice.
    """

    fields: dict[str, list[str]]
    rejected: bool = False
    certain: bool = True


def _header(event: dict[str, Any], name: str) -> str:
    headers = event.get("headers") or {}
    return next((v for k, v in headers.items() if k.lower() == name and v), "")


def _charset(content_type: str) -> tuple[str, bool]:
    """(charset percent-escapes decode in, whether the result is exactly predictable).

    A form is ASCII: a charset that does not read ASCII as ASCII is taken as UTF-8 (the
    WHATWG rule for UTF-16 forms). Stateful ISO-2022 charsets are not predictable here.
    """
    label = "utf-8"
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"'):
            label = value.strip().strip('"').lower()
    printable = bytes(range(0x20, 0x7F))
    try:
        if printable.decode(label) != printable.decode("ascii"):
            return "utf-8", True
    except (LookupError, ValueError):
        return "utf-8", True
    return label, "2022" not in codecs.lookup(label).name


_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


def _percent_decode(value: str, charset: str) -> str:
    """WHATWG percent-decode (a % without two hex digits stays as it is), then decode."""
    raw = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), value.encode("ascii"))
    return raw.decode(charset)


def _bad_escape(raw: bytes) -> bool:
    """A % not followed by two hex digits: the endpoint refuses the body (issue 13)."""
    return any(
        len(after) < 2 or any(byte not in b"0123456789abcdefABCDEF" for byte in after[:2])
        for after in raw.split(b"%")[1:]
    )


def read_fields(
    event: dict[str, Any], name: str, max_body_bytes: int, max_fields: int
) -> FormReading:
    """Every value of field ``name`` in the query string and the (form) body."""
    multi = event.get("multiValueQueryStringParameters")
    if multi:
        values = list(multi.get(name) or [])
    else:
        single = event.get("queryStringParameters") or {}
        values = [single[name]] if single.get(name) is not None else []
    body = event.get("body")
    content_type = _header(event, "content-type")
    if not body or content_type.split(";")[0].strip().lower() != FORM:
        return FormReading({name: values})
    charset, certain = _charset(content_type)
    if not certain:
        # Percent-escapes decoded run by run or as a whole differ here: no exact expectation.
        return FormReading({name: values}, certain=False)
    if event.get("isBase64Encoded"):
        if len(body) > 2 * max_body_bytes:
            return FormReading({}, rejected=True)
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return FormReading({}, rejected=True)
    else:
        try:
            raw = body.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:
            return FormReading({}, rejected=True)
    too_many = raw.count(b"&") + 1 > max_fields
    if len(raw) > max_body_bytes or not raw.isascii() or too_many or _bad_escape(raw):
        return FormReading({}, rejected=True)
    for pair in raw.decode("ascii").split("&"):
        if not pair:
            continue
        field, _, value = pair.partition("=")
        try:
            field = _percent_decode(field.replace("+", " "), charset)
            value = _percent_decode(value.replace("+", " "), charset)
        except (UnicodeDecodeError, ValueError):
            return FormReading({}, rejected=True)
        if field == name:
            values.append(value)
    return FormReading({name: values}, certain=certain)


# ---------------------------------------------------------------------------- answer checks

ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "p", "form",
    "input", "button", "a", "code", "div", "ul", "li", "label", "span",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "lang", "charset", "name", "content", "method", "type", "value", "class", "href", "id",
    "for", "role", "tabindex", "autofocus", "aria-labelledby", "novalidate", "autocomplete",
    "inputmode", "spellcheck", "autocapitalize", "required", "aria-invalid", "aria-describedby",
}  # fmt: skip


class PageStructure(HTMLParser):
    """The tags, attributes and hidden inputs of a page."""

    def __init__(self, body: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.inputs: dict[str, list[str]] = {}
        self.hrefs: list[str] = []
        self.feed(body)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        values = dict(attrs)
        if tag == "input" and values.get("name") is not None:
            self.inputs.setdefault(str(values["name"]), []).append(values.get("value") or "")
        if tag == "a" and values.get("href") is not None:
            self.hrefs.append(str(values["href"]))


def assert_security_headers(response: dict[str, Any]) -> None:
    headers = response["headers"]
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (name, headers)
    assert headers.get("Strict-Transport-Security", "").startswith("max-age="), headers
    csp = headers.get("Content-Security-Policy", "")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, csp


def assert_no_unescaped_echo(body: str, inputs: list[str], template_text: str) -> PageStructure:
    """Only the pages' own markup in ``body``: no input with markup characters appears
    raw (unless the same text is part of the pages anyway)."""
    page = PageStructure(body)
    assert page.tags <= ALLOWED_TAGS, page.tags - ALLOWED_TAGS
    assert page.attributes <= ALLOWED_ATTRIBUTES, page.attributes - ALLOWED_ATTRIBUTES
    for value in inputs:
        if any(c in value for c in "<>\"'") and value not in template_text:
            assert value not in body, f"unescaped echo of {value!r}"
    return page


def input_strings(event: dict[str, Any]) -> list[str]:
    """Every string the client controls in ``event``."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for key in ("headers", "multiValueHeaders", "queryStringParameters", "body"):
        walk(event.get(key))
    walk(event.get("multiValueQueryStringParameters"))
    walk((event.get("requestContext") or {}).get("path"))
    walk((event.get("requestContext") or {}).get("requestId"))
    body = event.get("body")
    if isinstance(body, str):
        texts = [body]
        if event.get("isBase64Encoded"):
            with contextlib.suppress(binascii.Error, ValueError):
                texts.append(base64.b64decode(body, validate=True).decode("utf-8", "replace"))
        for text in texts:
            for pair in text.split("&"):
                found.append(pair)
                for part in pair.split("="):
                    found.extend((part, unquote_plus(part, errors="replace")))
    return [s for s in found if s]


VALID_TOKEN_CHARS = frozenset(string.printable[:94])  # printable ASCII without whitespace
