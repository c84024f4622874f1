"""The CAmkES parser: what it extracts, what it skips, what it rejects (and fuzzing)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sel4vmm.config.camkes.parse import parse_c_integer, parse_text, parse_value_text
from sel4vmm.config.camkes.values import (
    BoolValue,
    CallValue,
    DictValue,
    IntValue,
    ListValue,
    StrValue,
    SymbolValue,
)
from sel4vmm.errors import Location, Sel4VmmError

ASSEMBLY = """
import <std_connector.camkes>;
import "local/thing.camkes";
component VM {
    control;
    attribute { string ram_base; } vm_address_config;
}
struct pair { int a; int b; };
assembly {
    composition {
        component VM vm0;
        component FileServer fserv;
        connection seL4RPCDataport fs0(from vm0.fs, to fserv.fs_ctrl);
        group g { component X y; }
    }
    configuration {
        vm0.vm_address_config = { "ram_base" : "0x40000000", };
        vm0.simple_untyped24_pool = 33;
        vm0.global_endpoint_base = 1 << 27;
        vm0.dtb = dtb([{"path": "/pl011@9000000"}]);
        vm0.flags = [true, false, SOME_SYMBOL, -1];
        vm0.alias <- fserv.heap_size;
        fserv.heap_size = 0x30000;
    }
}
"""


def test_imports_instances_and_settings_are_extracted() -> None:
    parsed = parse_text(ASSEMBLY, "app.camkes")
    assert [(i.path, i.system) for i in parsed.imports] == [
        ("std_connector.camkes", True),
        ("local/thing.camkes", False),
    ]
    assert [(i.type_name, i.name) for i in parsed.instances] == [
        ("VM", "vm0"),
        ("FileServer", "fserv"),
    ]
    settings = {(s.instance, s.attribute): s.value for s in parsed.settings}
    assert settings[("vm0", "simple_untyped24_pool")] == IntValue(
        33, settings[("vm0", "simple_untyped24_pool")].location
    )
    endpoint = settings[("vm0", "global_endpoint_base")]
    assert isinstance(endpoint, IntValue) and endpoint.value == 1 << 27
    address = settings[("vm0", "vm_address_config")]
    assert isinstance(address, DictValue)
    ram_base = address.get("ram_base")
    assert isinstance(ram_base, StrValue) and ram_base.value == "0x40000000"
    dtb = settings[("vm0", "dtb")]
    assert isinstance(dtb, CallValue) and dtb.function == "dtb"
    flags = settings[("vm0", "flags")]
    assert isinstance(flags, ListValue)
    assert [type(v) for v in flags.items] == [BoolValue, BoolValue, SymbolValue, IntValue]
    assert ("vm0", "alias") not in settings  # <- aliases are skipped, not misread
    assert ("fserv", "heap_size") in settings


def test_setting_locations_point_at_the_instance_name() -> None:
    parsed = parse_text(ASSEMBLY, "app.camkes")
    pool = next(s for s in parsed.settings if s.attribute == "simple_untyped24_pool")
    assert pool.location == Location("app.camkes", 18, 9)


def test_multiple_assemblies_and_named_blocks() -> None:
    text = (
        "assembly a { composition c { component VM vm1; } }\n"
        "assembly { configuration { vm1.x = 2; } };"
    )
    parsed = parse_text(text, "f")
    assert [i.name for i in parsed.instances] == ["vm1"]
    assert [(s.instance, s.attribute) for s in parsed.settings] == [("vm1", "x")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0x40000000", 0x40000000),
        ("0X10", 16),
        ("010", 8),
        ("0b101", 5),
        ("42u", 42),
        ("0x1000UL", 0x1000),
        ("(1 << 20) + 0x1000 * 2", (1 << 20) + 0x2000),
        ("0x40000000 | 0x1", 0x40000001),
        ("-7 / 2", -3),
        ("-7 % 2", -1),
        ("~0 & 0xff", 0xFF),
        ("!0", 1),
    ],
)
def test_integer_expressions_follow_c(text: str, expected: int) -> None:
    value = parse_value_text(text, "f")
    assert isinstance(value, IntValue)
    assert value.value == expected


def test_string_concatenation() -> None:
    value = parse_value_text('"a" "b"', "f")
    assert isinstance(value, StrValue) and value.value == "ab"


def test_parse_c_integer_rejects_garbage() -> None:
    with pytest.raises(Sel4VmmError, match="not an integer"):
        parse_c_integer("0xZZ", Location("f", 1, 1))
    with pytest.raises(Sel4VmmError, match="not an integer"):
        parse_c_integer("09", Location("f", 1, 1))


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        ("assembly { configuration { vm0.x = 1; }", "'{' is never closed", (1, 10)),
        ("assembly { } }", "'}' has no matching '{'", (1, 14)),
        ("assembly { configuration ( } }", "closed by", (1, 28)),
        ("assembly { configuration { vm0.x = ; } }", "expected a value", (1, 36)),
        ("assembly { configuration { vm0.x = 1 } }", "expected ';'", (1, 38)),
        ('assembly { configuration { vm0.x = "a" + 1; } }', "needs numbers", (1, 36)),
        ("assembly { configuration { vm0.x = 1 / 0; } }", "division by zero", (1, 38)),
        ("assembly { configuration { vm0.x = [1 2]; } }", "expected ','", (1, 39)),
        ("assembly { configuration { vm0.x = {1: 2}; } }", "dictionary key", (1, 37)),
        ("import foo;", "expected a file name", (1, 8)),
        ("import <foo.camkes;", "missing its closing", (1, 8)),
    ],
)
def test_syntax_errors_are_located(text: str, message: str, where: tuple[int, int]) -> None:
    with pytest.raises(Sel4VmmError, match=message) as caught:
        parse_text(text, "bad.camkes")
    location = caught.value.location
    assert location is not None
    assert (location.path, location.line, location.column) == ("bad.camkes", *where)


def test_unknown_statements_are_skipped() -> None:
    text = """
    procedure P { void f(in int x); };
    connector C { from Procedure; to Procedure; }
    assembly {
        composition { export a.b -> c; component T t { } ; }
        configuration { t.x <- u.y; t.a.b.c = 3; weird stuff here; t.z = 1; }
        somethingelse;
    }
    """
    parsed = parse_text(text, "f")
    assert [(s.instance, s.attribute) for s in parsed.settings] == [("t", "a.b.c"), ("t", "z")]


CAMKES_WORDS = st.sampled_from(
    [
        "assembly",
        "composition",
        "configuration",
        "component",
        "import",
        "vm0",
        "VM",
        "dtb",
        "true",
        "false",
        "x",
        ".",
        "=",
        ";",
        ",",
        ":",
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        "<",
        ">",
        "<<",
        "-",
        "+",
        "*",
        "/",
        "%",
        "0x10",
        "0",
        "7",
        '"s"',
        '"0x40000000"',
        "\n",
        '#line 3 "q.camkes"\n',
        "/* c */",
        "// c\n",
        "<-",
        "|",
        "&",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(CAMKES_WORDS, max_size=60))
def test_fuzz_token_soup_only_raises_sel4vmm_error(words: list[str]) -> None:
    try:
        parse_text(" ".join(words), "fuzz.camkes")
    except Sel4VmmError as error:
        assert error.location is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text_only_raises_sel4vmm_error(text: str) -> None:
    try:
        parse_text(text, "fuzz.camkes")
    except Sel4VmmError as error:
        assert error.location is not None


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789xXabfulUL()+-*/%<>|&^~! ", max_size=40))
def test_fuzz_value_expressions_only_raise_sel4vmm_error(text: str) -> None:
    try:
        value = parse_value_text(text, "fuzz")
    except Sel4VmmError as error:
        assert error.location is not None
    else:
        assert value.location.path == "fuzz"


def test_deep_nesting_and_long_operator_runs_are_errors_or_values_not_crashes() -> None:
    with pytest.raises(Sel4VmmError, match="nested more than"):
        parse_text("assembly { configuration { x.y = " + "[" * 5000 + "]" * 5000 + "; } }", "f")
    value = parse_value_text("-" * 5000 + "1", "f")
    assert isinstance(value, IntValue) and value.value == 1
