"""Tokens of preprocessed CAmkES text, each carrying the place in the *user's* file.

The C preprocessor has already run when this lexer sees the text, so every line came from
some file and pcpp said which with ``#line N "file"`` directives (GCC's ``# N "file"``
form is accepted too).  The lexer follows those directives so that a token produced by
line 12 of ``devices.camkes`` reports ``devices.camkes:12`` even though it sits on line 300
of the preprocessed text; that is what lets errors point at what the user wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from sel4vmm.errors import Location, Sel4VmmError


class TokenKind(Enum):
    """The lexical classes the CAmkES configuration grammar needs."""

    IDENT = "identifier"
    NUMBER = "number"
    STRING = "string"
    PUNCT = "punctuation"
    END = "end of input"


@dataclass(frozen=True)
class Token:
    """One token; ``value`` is the decoded text (strings without quotes, escapes resolved)."""

    kind: TokenKind
    value: str
    location: Location
    #: The exact source text, e.g. ``"a\\"b"`` for a string token.
    raw: str = ""

    def is_punct(self, text: str) -> bool:
        return self.kind is TokenKind.PUNCT and self.value == text

    def is_ident(self, text: str) -> bool:
        return self.kind is TokenKind.IDENT and self.value == text


#: Longest first so ``<<`` wins over ``<``.
_PUNCTUATORS = (
    "<<",
    ">>",
    "<-",
    "->",
    "&&",
    "||",
    "==",
    "!=",
    "<=",
    ">=",
    *"{}[]()<>;,.:=+-*/%|&^~!?@$",
)
_LINE_DIRECTIVE = re.compile(r'#\s*(?:line\s+)?(\d+)(?:\s+"((?:[^"\\]|\\.)*)")?')
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# C integer literals (with u/l suffixes) and, for completeness, simple decimals.
_NUMBER = re.compile(r"(?:0[xX][0-9A-Fa-f]+|0[bB][01]+|\d+(?:\.\d+)?)[uUlL]*(?![A-Za-z0-9_])")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


def _decode_string(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def tokenize(text: str, path: str) -> list[Token]:
    """Split preprocessed ``text`` into tokens, ending with one ``END`` token.

    ``path`` names the file the text starts in; ``#line`` directives move the location.
    Comments are skipped in case the text did not go through the preprocessor.  An
    unterminated string or comment, or a character CAmkES has no use for, is a
    :class:`Sel4VmmError` at its location.
    """
    tokens: list[Token] = []
    current_path = path
    line = 1
    pos = 0
    line_start = 0
    at_line_start = True
    length = len(text)

    def here(offset: int) -> Location:
        return Location(current_path, line, offset - line_start + 1)

    while pos < length:
        ch = text[pos]
        if ch == "\n":
            line += 1
            pos += 1
            line_start = pos
            at_line_start = True
            continue
        if ch in " \t\r\f\v":
            pos += 1
            continue
        if ch == "#" and at_line_start:
            end = text.find("\n", pos)
            end = length if end < 0 else end
            directive = _LINE_DIRECTIVE.fullmatch(text[pos:end].rstrip())
            if directive:
                # The line *after* the directive is line N of the named file.
                line = int(directive.group(1)) - 1
                if directive.group(2) is not None:
                    current_path = _decode_string(directive.group(2))
            # Any other directive (#pragma, an unexpanded #include the preprocessor
            # passed through) carries no configuration: skip the line.
            pos = end
            continue
        at_line_start = False
        if text.startswith("//", pos):
            end = text.find("\n", pos)
            pos = length if end < 0 else end
            continue
        if text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            if end < 0:
                raise Sel4VmmError(
                    "comment is never closed", location=here(pos), fix="add the closing */"
                )
            for offset in range(pos, end):
                if text[offset] == "\n":
                    line += 1
                    line_start = offset + 1
            pos = end + 2
            continue
        if ch == '"':
            # CAmkES strings may span lines (camkes-vm's interfaces/vm-connectors.camkes
            # writes its Isabelle connector specs so); the token is located at its quote.
            start = pos
            where = here(start)
            pos += 1
            while pos < length and text[pos] != '"':
                if text[pos] == "\n":
                    line += 1
                    line_start = pos + 1
                pos += 2 if text[pos] == "\\" and text[pos + 1 : pos + 2] != "\n" else 1
            if pos >= length:
                raise Sel4VmmError(
                    "string is never closed",
                    location=where,
                    fix='add the closing "',
                )
            pos += 1
            raw = text[start:pos]
            tokens.append(Token(TokenKind.STRING, _decode_string(raw[1:-1]), where, raw))
            continue
        match = _IDENT.match(text, pos)
        if match:
            tokens.append(Token(TokenKind.IDENT, match.group(), here(pos), match.group()))
            pos = match.end()
            continue
        match = _NUMBER.match(text, pos)
        if match:
            tokens.append(Token(TokenKind.NUMBER, match.group(), here(pos), match.group()))
            pos = match.end()
            continue
        if ch.isdigit():
            bad = re.match(r"[0-9A-Za-z_.]+", text[pos:])
            shown = bad.group() if bad else ch
            raise Sel4VmmError(
                f"'{shown}' is not a number",
                location=here(pos),
                fix="write a decimal or 0x-prefixed hexadecimal integer",
            )
        for punct in _PUNCTUATORS:
            if text.startswith(punct, pos):
                tokens.append(Token(TokenKind.PUNCT, punct, here(pos), punct))
                pos += len(punct)
                break
        else:
            raise Sel4VmmError(
                f"unexpected character {ch!r}",
                location=here(pos),
                fix="remove it; CAmkES configurations do not use it",
            )
    tokens.append(Token(TokenKind.END, "", Location(current_path, line, pos - line_start + 1)))
    return tokens
