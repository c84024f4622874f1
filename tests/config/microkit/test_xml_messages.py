"""Malformed XML gets the Microkit tool's words: its parser is roxmltree 0.19.0
(``Cargo.lock`` at the microkit commit in ../shared/realworld/SOURCES.txt), whose
``impl Display for Error`` (``src/parse.rs`` at tag v0.19.0) spells each message, and
``sdf.rs`` wraps it as ``Could not parse '{file}': {err}``.  Positions are roxmltree's:
``row:col`` with columns in characters, at the token its tokenizer stopped on.  The
remaining differences are in ``xmlsource.roxmltree_reason``'s docstring.
"""

from __future__ import annotations

import pytest

from sel4vmm.config.microkit import check_text

PD = '<protection_domain name="p"><program_image path="p.elf"/></protection_domain>'


def tool_text(text: str) -> str:
    (error,) = check_text(text, "x.system").errors
    return error.tool_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # tokenizer.rs parse(): DtdDetected as soon as the prolog holds <!DOCTYPE.
        (f"<!DOCTYPE system>\n<system>{PD}</system>", "XML with DTD detected"),
        (
            f'<?xml version="1.0"?>\n<!DOCTYPE system [<!ENTITY e "x">]>\n<system>{PD}</system>',
            "XML with DTD detected",
        ),
        # Text before the root: parse_misc stops there, then UnknownToken at that spot.
        (f"abc<system>{PD}</system>", "unknown token at 1:1"),
        (f'<?xml version="1.0"?>\n<!-- c -->\n  abc<system>{PD}</system>', "unknown token at 3:3"),
        # Anything but comments, PIs and whitespace after the root element.
        (f"<system>{PD}</system>\n junk", "unknown token at 2:2"),
        (f"<system>{PD}</system>\n<other/>", "unknown token at 2:1"),
        # parse.rs: UnexpectedCloseTag at the close tag's "<".
        (f"<system>\n  <a></b>{PD}\n</system>", "expected 'a' tag, not 'b' at 2:6"),
        # DuplicatedAttribute at the second attribute.
        (f'<system a="1"\n   a="2">{PD}</system>', "attribute 'a' at 2:4 is already defined"),
        # UnknownEntityReference at the "&", in text and in attribute values.
        (f"<system>&foo;{PD}</system>", "unknown entity reference 'foo' at 1:9"),
        (f'<system><a x="&amp;&bar;"/>{PD}</system>', "unknown entity reference 'bar' at 1:20"),
        # NoRootNode / UnclosedRootNode carry no position.
        ("", "the document does not have a root node"),
        ("  <!-- only a comment -->", "the document does not have a root node"),
        (f"<system>{PD}", "the root node was opened but never closed"),
        # Start tags (tokenizer.rs parse_element): an attribute value stops at '<', then
        # consume_byte(quote) fails; consume_quote, consume_eq, consume_spaces, the '>'
        # after '/', and consume_qname's NameStartChar test.
        (f'<system><a x="1></system>{PD}', "expected '\"' not '<' at 1:17"),
        (f"<system><a x='a<b'/>{PD}</system>", "expected ''' not '<' at 1:16"),
        (f"<system><a x=1/>{PD}</system>", "expected a quote not '1' at 1:14"),
        (f'<system><a x="1"y="2"/>{PD}</system>', "expected a whitespace not 'y' at 1:17"),
        (f"<system><a x>{PD}</system>", "expected '=' not '>' at 1:13"),
        (f"<system><a/ >{PD}</system>", "expected '>' not ' ' at 1:12"),
        (f"<system><1a/>{PD}</system>", "invalid name token at 1:10"),
        (f'<system><a 1x="2"/>{PD}</system>', "invalid name token at 1:12"),
        # A bare '&' in text: MalformedEntityReference at the '&'.
        (f"<system>a & b{PD}</system>", "malformed entity reference at 1:11"),
    ],
)
def test_roxmltree_words(text: str, expected: str) -> None:
    assert tool_text(text) == f"Could not parse 'x.system': {expected}"


def test_text_after_a_child_names_the_empty_element() -> None:
    """sdf.rs check_no_text: later text nodes are checked themselves; their tag name is ''."""
    text = f"<system>\n{PD} tail\n</system>"
    assert (
        tool_text(text) == f"Error: unexpected text found in element '' @ x.system:2:{len(PD) + 1}"
    )


def test_text_first_in_system_names_system() -> None:
    text = f"<system>stray{PD}</system>"
    assert tool_text(text) == "Error: unexpected text found in element 'system' @ x.system:1:1"
