"""A tiny XML tree that remembers where every element and text run started.

The Microkit tool reports each problem at the ``row:col`` where the offending element's
``<`` is (1-based, counted in characters, as roxmltree does).  The standard library's
ElementTree forgets positions, so this module drives expat directly and records, for each
element, its tag, its attributes *in document order* (the tool reports the first invalid
attribute it meets), its children and the non-whitespace text that sits directly inside
it.  Comments and processing instructions are dropped, as the tool ignores them.

Broken XML never escapes as an expat exception: it becomes one :class:`MicrokitError`
that points at the place expat gave up.
"""

from __future__ import annotations

import bisect
import re
import xml.parsers.expat
from dataclasses import dataclass, field

from sel4vmm.config.microkit.diagnostics import MicrokitError, SourceFile
from sel4vmm.errors import Location

#: Nesting limit: real descriptions are a handful of levels deep; the limit keeps the
#: recursive readers far from Python's recursion limit on hostile input.
MAX_DEPTH = 100


class _DtdDetected(Exception):
    """roxmltree's default options refuse any ``<!DOCTYPE>`` (``allow_dtd: false``)."""


class _TooDeep(Exception):
    def __init__(self, location: Location) -> None:
        super().__init__(str(location))
        self.location = location


@dataclass(frozen=True)
class TextRun:
    """Character data directly inside an element, with where it starts."""

    text: str
    location: Location
    #: True when nothing (element, comment, other text) came before it in its parent.
    is_first_child: bool


@dataclass
class XmlElement:
    """One element: tag, ordered attributes, element children, its own text runs."""

    tag: str
    attributes: dict[str, str]
    location: Location
    children: list[XmlElement] = field(default_factory=list)
    texts: list[TextRun] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        """The attribute's value, or None when the element does not carry it."""
        return self.attributes.get(name)


class _LineIndex:
    """Turns expat's byte offsets into 1-based (line, character column) pairs.

    Columns count characters, as roxmltree's ``text_pos_at`` does, so a line with non-ASCII
    text needs its bytes decoded up to the offset.  Offsets arrive in increasing order, so
    each line is decoded incrementally from the last position asked for: the whole file
    costs O(size), even when 10^5 elements share one line.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._line_starts = [0]
        start = data.find(b"\n")
        while start != -1:
            self._line_starts.append(start + 1)
            start = data.find(b"\n", start + 1)
        self._ascii = data.isascii()
        # The last answer: (byte offset, line, column), to continue from.
        self._last = (0, 1, 1)

    def position(self, byte_index: int) -> tuple[int, int]:
        last_index, last_line, last_column = self._last
        if byte_index >= last_index:
            line = last_line
            while line < len(self._line_starts) and self._line_starts[line] <= byte_index:
                line += 1
            if line != last_line:
                last_index, last_column = self._line_starts[line - 1], 1
        else:
            line = bisect.bisect_right(self._line_starts, byte_index)
            last_index, last_column = self._line_starts[line - 1], 1
        if self._ascii:
            column = last_column + byte_index - last_index
        else:
            piece = self._data[last_index:byte_index]
            column = last_column + len(piece.decode("utf-8", errors="replace"))
        self._last = (byte_index, line, column)
        return line, column


def parse_xml(source: SourceFile) -> XmlElement:
    """Parse ``source`` into a tree; raise :class:`MicrokitError` for malformed XML."""
    # Lone surrogates cannot be encoded; "replace" keeps one character per character so
    # positions stay right, and expat then sees ordinary (if odd) text.
    data = source.text.encode("utf-8", errors="replace")
    index = _LineIndex(data)
    # The text is already decoded; a declared encoding (even a bogus one) must not apply.
    parser = xml.parsers.expat.ParserCreate(encoding="utf-8")
    parser.ordered_attributes = True

    stack: list[XmlElement] = []
    roots: list[XmlElement] = []
    # expat may deliver one text run in several pieces (per line, per entity); they are
    # joined here and the run keeps the position of its first piece.
    pending: list[str] = []
    pending_start: list[Location] = []
    # How many child nodes (elements, comments, text runs) each open element has so far:
    # the tool treats text specially when it is the very first child node.
    nodes_seen: list[int] = []

    def here() -> Location:
        line, column = index.position(parser.CurrentByteIndex)
        return source.location(line, column)

    def flush_text() -> None:
        if pending and stack:
            text = "".join(pending)
            parent = stack[-1]
            if text.strip():
                parent.texts.append(
                    TextRun(text=text, location=pending_start[0], is_first_child=not nodes_seen[-1])
                )
            nodes_seen[-1] += 1
        pending.clear()
        pending_start.clear()

    def start(tag: str, flat_attributes: list[str]) -> None:
        flush_text()
        if len(stack) >= MAX_DEPTH:
            raise _TooDeep(here())
        attributes = dict(zip(flat_attributes[0::2], flat_attributes[1::2], strict=True))
        element = XmlElement(tag=tag, attributes=attributes, location=here())
        if stack:
            stack[-1].children.append(element)
            nodes_seen[-1] += 1
        else:
            roots.append(element)
        stack.append(element)
        nodes_seen.append(0)

    def end(tag: str) -> None:
        del tag
        flush_text()
        stack.pop()
        nodes_seen.pop()

    def characters(text: str) -> None:
        if not pending:
            pending_start.append(here())
        pending.append(text)

    def comment(text: str) -> None:
        del text
        flush_text()
        if nodes_seen:
            nodes_seen[-1] += 1

    def doctype(*args: object) -> None:
        del args
        raise _DtdDetected

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    parser.CommentHandler = comment
    parser.StartDoctypeDeclHandler = doctype
    try:
        parser.Parse(data, True)
    except _DtdDetected:
        raise MicrokitError.plain(
            f"Could not parse '{source.name}': XML with DTD detected",
            location=source.location(1, 1),
            message="the file has a <!DOCTYPE>, which the Microkit tool's XML parser refuses",
            fix="remove the <!DOCTYPE ...> declaration (and any entities it defines)",
        ) from None
    except _TooDeep as too_deep:
        raise MicrokitError.colon(
            f"elements nested too deeply (more than {MAX_DEPTH} levels)",
            too_deep.location,
            fix="no system description needs this depth; check for unclosed elements",
        ) from None
    except xml.parsers.expat.ExpatError as error:
        position = max(0, parser.ErrorByteIndex)
        reason, position = roxmltree_reason(
            error.code, data, position, stack[-1].tag if stack else None, bool(roots)
        )
        line, column = index.position(position)
        reason = reason.replace("{pos}", f"{line}:{column}")
        raise MicrokitError.plain(
            f"Could not parse '{source.name}': {reason}",
            location=source.location(line, column),
            message=f"malformed XML: {reason}",
            fix="fix the XML syntax at this position (unclosed tag, stray '&' or '<', "
            "duplicate attribute?)",
        ) from None
    if not roots:
        raise MicrokitError.plain(
            f"Could not parse '{source.name}': the document does not have a root node",
            location=source.location(1, 1),
            message="the file has no XML root element",
            fix="a system description is a single <system> element",
        )
    return roots[0]


_EXPAT = xml.parsers.expat.errors
_NAME = re.compile(rb"[^\s/>]+")
_ENTITY = re.compile(rb"&([^;&<>\s\"']*);?")
_PREDEFINED_ENTITIES = {b"amp", b"lt", b"gt", b"apos", b"quot"}


def roxmltree_reason(
    code: int, data: bytes, position: int, open_tag: str | None, root_seen: bool
) -> tuple[str, int]:
    """The Microkit tool's XML parser's (roxmltree 0.19) words for an expat error, and the
    byte offset it reports; ``{pos}`` in the text stands for ``line:column``.

    Reproduced: unknown tokens outside the root, mismatched close tags, duplicated
    attributes, unknown and malformed entity references, a missing or unclosed root, and
    inside a start tag a missing quote, ``=``, space or ``>``, or a bad name.  Other
    malformations keep expat's reason (roxmltree's tokenizer words them its own way);
    the verdict and the position agree, the wording may not.
    """
    messages = _EXPAT.codes
    if code == messages[_EXPAT.XML_ERROR_TAG_MISMATCH] and open_tag is not None:
        start = position - 2 if data[max(0, position - 2) : position] == b"</" else position
        name = _NAME.match(data, start + 2)
        actual = name.group().decode("utf-8", "replace") if name else ""
        return f"expected '{open_tag}' tag, not '{actual}' at {{pos}}", start
    if code == messages[_EXPAT.XML_ERROR_DUPLICATE_ATTRIBUTE]:
        name = _NAME.match(data, position)
        attribute = name.group().split(b"=")[0].decode("utf-8", "replace") if name else ""
        return f"attribute '{attribute}' at {{pos}} is already defined", position
    if code == messages[_EXPAT.XML_ERROR_UNDEFINED_ENTITY]:
        tag_end = data.find(b">", position)
        stop = len(data) if tag_end == -1 else tag_end + 1
        for reference in _ENTITY.finditer(data, position, stop):
            entity = reference.group(1)
            if entity not in _PREDEFINED_ENTITIES and not entity.startswith(b"#"):
                return (
                    f"unknown entity reference '{entity.decode('utf-8', 'replace')}' at {{pos}}",
                    reference.start(),
                )
    if code == messages[_EXPAT.XML_ERROR_NO_ELEMENTS]:
        if root_seen:
            return "the root node was opened but never closed", 0
        return "the document does not have a root node", 0
    if code == messages[_EXPAT.XML_ERROR_JUNK_AFTER_DOC_ELEMENT]:
        return "unknown token at {pos}", position
    if code == messages[_EXPAT.XML_ERROR_INVALID_TOKEN] and root_seen:
        if data[position - 1 : position] == b"&":
            return "malformed entity reference at {pos}", position - 1
        in_tag = _start_tag_reason(data, position)
        if in_tag is not None:
            return in_tag, position
    if (
        open_tag is None
        and not root_seen
        and code
        in (
            messages[_EXPAT.XML_ERROR_SYNTAX],
            messages[_EXPAT.XML_ERROR_INVALID_TOKEN],
        )
    ):
        return "unknown token at {pos}", _prolog_end(data)
    return f"{_EXPAT.messages[code]} at {{pos}}", position


_SPACE = b" \t\r\n"


def _start_tag_reason(data: bytes, position: int) -> str | None:
    """roxmltree's words for a bad byte at ``position`` inside a start tag, found by
    replaying the tag up to it: what its tokenizer expected there (a quote, ``=``, a
    space before the next attribute, ``>`` after ``/``, a name), or None if unsure."""
    start = data.rfind(b"<", 0, position)
    if start == -1 or position >= len(data):
        return None
    actual = chr(data[position])
    state, quote = "name", 0
    index = start + 1
    while index < position:
        byte = data[index]
        if state == "name":
            if byte in _SPACE:
                state = "space"
            elif byte == ord("/"):
                state = "slash"
        elif state == "space":
            if byte == ord("/"):
                state = "slash"
            elif byte not in _SPACE:
                state = "attribute"
        elif state == "attribute":
            if byte in _SPACE:
                state = "before_eq"
            elif byte == ord("="):
                state = "after_eq"
        elif state == "before_eq":
            if byte == ord("="):
                state = "after_eq"
            elif byte not in _SPACE:
                return None
        elif state == "after_eq":
            if byte in (ord('"'), ord("'")):
                state, quote = "value", byte
            elif byte not in _SPACE:
                return None
        elif state == "value":
            if byte == quote:
                state = "after_value"
        elif state == "after_value":
            state = "space" if byte in _SPACE else ("slash" if byte == ord("/") else "other")
        else:
            return None
        index += 1
    if (state == "name" and index == start + 1) or (state == "space" and actual not in "/>"):
        return "invalid name token at {pos}"  # consume_qname: not a NameStartChar
    if state == "value" and actual == "<":
        return f"expected '{chr(quote)}' not '<' at {{pos}}"
    if state == "after_eq":
        return f"expected a quote not '{actual}' at {{pos}}"
    if state in ("attribute", "before_eq") and actual not in "=":
        return f"expected '=' not '{actual}' at {{pos}}"
    if state == "after_value" and actual not in "/>":
        return f"expected a whitespace not '{actual}' at {{pos}}"
    if state == "slash":
        return f"expected '>' not '{actual}' at {{pos}}"
    return None


def _prolog_end(data: bytes) -> int:
    """Where roxmltree stops before the root: after a BOM, an XML declaration, and any
    whitespace, comments and processing instructions (its ``parse_misc``)."""
    position = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    if data.startswith(b"<?xml ", position):
        end = data.find(b"?>", position)
        position = len(data) if end == -1 else end + 2
    while position < len(data):
        while position < len(data) and data[position] in b" \t\r\n":
            position += 1
        if data.startswith(b"<!--", position):
            end = data.find(b"-->", position + 4)
            position = len(data) if end == -1 else end + 3
        elif data.startswith(b"<?", position):
            end = data.find(b"?>", position + 2)
            position = len(data) if end == -1 else end + 2
        else:
            break
    return position
