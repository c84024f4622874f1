"""The lexer: token kinds, #line tracking, and located errors."""

from __future__ import annotations

import pytest

from sel4vmm.config.camkes.lexer import TokenKind, tokenize
from sel4vmm.errors import Location, Sel4VmmError


def test_tokens_and_kinds() -> None:
    tokens = tokenize('vm0.ram = {"a" : 0x10, b: 1 << 3};', "f.camkes")
    assert [(t.kind, t.value) for t in tokens[:6]] == [
        (TokenKind.IDENT, "vm0"),
        (TokenKind.PUNCT, "."),
        (TokenKind.IDENT, "ram"),
        (TokenKind.PUNCT, "="),
        (TokenKind.PUNCT, "{"),
        (TokenKind.STRING, "a"),
    ]
    assert any(t.is_punct("<<") for t in tokens)
    assert tokens[-1].kind is TokenKind.END


def test_locations_are_one_based_line_and_column() -> None:
    tokens = tokenize("a\n  bb = 1;", "f.camkes")
    assert tokens[1].value == "bb"
    assert tokens[1].location == Location("f.camkes", 2, 3)


def test_line_directives_move_locations_to_the_original_file() -> None:
    text = '#line 40 "devices.camkes"\nvm0.x = 1;\n# 7 "other.h"\ny'
    tokens = tokenize(text, "out.i")
    assert tokens[0].location == Location("devices.camkes", 40, 1)
    assert tokens[-2].location == Location("other.h", 7, 1)


def test_line_directive_without_file_keeps_the_file() -> None:
    tokens = tokenize("#line 10\nx", "a.camkes")
    assert tokens[0].location == Location("a.camkes", 10, 1)


def test_comments_are_skipped_and_lines_counted() -> None:
    tokens = tokenize("/* one\n two */ x // three\ny", "f")
    assert [t.value for t in tokens[:-1]] == ["x", "y"]
    assert tokens[1].location.line == 3


def test_string_escapes_are_decoded() -> None:
    (token, _end) = tokenize(r'"a\"b\\c"', "f")
    assert token.value == 'a"b\\c'
    assert token.raw == r'"a\"b\\c"'


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ('x = "open', "string is never closed", 5),
        ("x /* open", "comment is never closed", 3),
        ("x = 0x4000zz;", "is not a number", 5),
        ("x = `y`;", "unexpected character", 5),
    ],
)
def test_lexical_errors_are_located(text: str, message: str, column: int) -> None:
    with pytest.raises(Sel4VmmError, match=message) as caught:
        tokenize(text, "bad.camkes")
    assert caught.value.location == Location("bad.camkes", 1, column)
    assert caught.value.fix


def test_strings_may_span_lines() -> None:
    # camkes-vm's interfaces/vm-connectors.camkes (ad66b659) writes its connectors'
    # Isabelle specs as strings over several lines; CAmkES accepts them.
    text = 'attribute string spec = "\\<lparr>\n  kind = Native\n  \\<rparr>";\nnext = 1;'
    tokens = tokenize(text, "c.camkes")
    string = next(t for t in tokens if t.kind is TokenKind.STRING)
    assert string.value == "<lparr>\n  kind = Native\n  <rparr>"
    assert string.location == Location("c.camkes", 1, 25)
    after = next(t for t in tokens if t.value == "next")
    assert after.location == Location("c.camkes", 4, 1)


def test_a_string_open_to_the_end_is_located_at_its_quote() -> None:
    with pytest.raises(Sel4VmmError, match="string is never closed") as caught:
        tokenize('a = 1;\nb = "open\nstill open\n', "s.camkes")
    assert caught.value.location == Location("s.camkes", 2, 5)
