"""The XML layer keeps positions, attribute order and stray text the way the checks need."""

from __future__ import annotations

import pytest

from sel4vmm.config.microkit.diagnostics import MicrokitError, SourceFile
from sel4vmm.config.microkit.xmlsource import XmlElement, parse_xml


def parse(text: str) -> XmlElement:
    return parse_xml(SourceFile("f.system", text))


def test_element_positions_are_one_based_line_and_column() -> None:
    root = parse('<system>\n    <memory_region name="a" size="1"/>\n\t<x/></system>')
    assert (root.location.line, root.location.column) == (1, 1)
    region, x = root.children
    assert (region.location.line, region.location.column) == (2, 5)
    assert (x.location.line, x.location.column) == (3, 2)
    assert region.location.path == "f.system"


def test_attributes_keep_document_order() -> None:
    root = parse('<system z="1" a="2" m="3"/>')
    assert list(root.attributes) == ["z", "a", "m"]


def test_comments_do_not_count_as_text_and_break_first_child() -> None:
    root = parse("<system><!-- c -->junk<a/></system>")
    (run,) = root.texts
    assert run.text == "junk" and not run.is_first_child
    root = parse("<system>\n  junk\n  <a/></system>")
    (run,) = root.texts
    assert run.is_first_child and run.location.line == 1


def test_text_split_by_entities_is_one_run() -> None:
    root = parse("<system>a &amp; b</system>")
    (run,) = root.texts
    assert run.text == "a & b"


def test_declared_encoding_is_ignored_for_already_decoded_text() -> None:
    root = parse('<?xml version="1.0" encoding="latin-9"?><system n="ä"/>')
    assert root.attributes == {"n": "ä"}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("<system>\n<a>\n</system>", 3),
        ('<system a="1" a="2"/>', 1),
        ("", 1),
        ("<system/><extra/>", 1),
    ],
)
def test_malformed_xml_is_a_located_error(text: str, line: int) -> None:
    with pytest.raises(MicrokitError) as raised:
        parse(text)
    diagnostic = raised.value.diagnostic
    assert diagnostic.tool_text.startswith("Could not parse 'f.system': ")
    assert diagnostic.location is not None and diagnostic.location.line == line
