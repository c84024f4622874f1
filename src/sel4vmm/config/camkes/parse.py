"""The part of the CAmkES language a VM configuration is made of.

CAmkES files declare components, connectors, procedures and structs, then compose an
``assembly`` out of component instances and connections and finally set attributes of
those instances in its ``configuration`` block.  What decides a VM's memory is only:

* ``import`` statements (``devices.camkes`` carries the per-board half of a VM);
* ``component <Type> <name>;`` in a composition (which instances are VMs);
* ``<instance>.<attribute> = <value>;`` settings in a configuration (the values they
  hold are modelled in :mod:`.values`).

Component bodies and connections are read only for their dataports, events and ends
(:mod:`.connections`); everything else (``<-`` aliases, groups) is skipped as a
balanced run of tokens, so syntax this reader does not interpret never stops it, while
unbalanced brackets and malformed values are reported at their place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sel4vmm.config.camkes.c_integers import apply_operator
from sel4vmm.config.camkes.c_integers import parse_c_integer as parse_c_integer  # re-exported
from sel4vmm.config.camkes.connections import (
    ComponentDecl,
    ConnectionDecl,
    read_component,
    read_connection,
)
from sel4vmm.config.camkes.lexer import Token, TokenKind, tokenize
from sel4vmm.config.camkes.values import (
    BoolValue,
    CallValue,
    DictEntry,
    DictValue,
    IntValue,
    ListValue,
    StrValue,
    SymbolValue,
    Value,
)
from sel4vmm.errors import Location, Sel4VmmError


@dataclass(frozen=True)
class Import:
    """``import <path>;`` (``system=True``) or ``import "path";``."""

    path: str
    system: bool
    location: Location


@dataclass(frozen=True)
class InstanceDecl:
    """``component <type_name> <name>;`` inside a composition."""

    type_name: str
    name: str
    location: Location


@dataclass(frozen=True)
class Setting:
    """``<instance>.<attribute> = <value>;`` inside a configuration."""

    instance: str
    attribute: str
    value: Value
    location: Location


@dataclass
class CamkesFile:
    """What one (preprocessed) CAmkES file says that matters for VMs, in file order."""

    path: str
    imports: list[Import] = field(default_factory=list)
    instances: list[InstanceDecl] = field(default_factory=list)
    settings: list[Setting] = field(default_factory=list)
    #: Component definitions (their dataports and events) and composition connections.
    components: list[ComponentDecl] = field(default_factory=list)
    connections: list[ConnectionDecl] = field(default_factory=list)


_OPENERS = {"{": "}", "[": "]", "(": ")"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}
#: Binary operators of C integer expressions by binding strength, loosest first.
_BINARY_LEVELS: tuple[tuple[str, ...], ...] = (
    ("|",),
    ("^",),
    ("&",),
    ("<<", ">>"),
    ("+", "-"),
    ("*", "/", "%"),
)


#: Deeper bracket nesting than any configuration needs is refused before the recursive
#: descent could exhaust Python's stack.
MAX_NESTING = 100


def check_balanced(tokens: list[Token]) -> None:
    """Raise at the first bracket that is never closed, closed by the wrong kind, or stray."""
    stack: list[Token] = []
    for token in tokens:
        if token.kind is not TokenKind.PUNCT:
            continue
        if token.value in _OPENERS:
            stack.append(token)
            if len(stack) > MAX_NESTING:
                raise Sel4VmmError(
                    f"brackets nested more than {MAX_NESTING} deep",
                    location=token.location,
                    fix="flatten the value",
                )
        elif token.value in _CLOSERS:
            if not stack:
                raise Sel4VmmError(
                    f"'{token.value}' has no matching '{_CLOSERS[token.value]}'",
                    location=token.location,
                    fix=f"remove it or add the missing '{_CLOSERS[token.value]}' before it",
                )
            opener = stack.pop()
            if _OPENERS[opener.value] != token.value:
                raise Sel4VmmError(
                    f"'{opener.value}' opened at {opener.location} is closed by '{token.value}'",
                    location=token.location,
                    fix=f"close it with '{_OPENERS[opener.value]}'",
                )
    if stack:
        opener = stack[-1]
        raise Sel4VmmError(
            f"'{opener.value}' is never closed",
            location=opener.location,
            fix=f"add the matching '{_OPENERS[opener.value]}'",
        )


class _Parser:
    def __init__(self, tokens: list[Token], path: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.file = CamkesFile(path)

    # -- token helpers -------------------------------------------------------------------

    @property
    def current(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind is not TokenKind.END:
            self.pos += 1
        return token

    def expect_punct(self, text: str, what: str) -> Token:
        token = self.current
        if not token.is_punct(text):
            raise Sel4VmmError(
                f"expected '{text}' {what}, found {_describe(token)}",
                location=token.location,
                fix=f"add '{text}'",
            )
        return self.advance()

    def skip_statement(self) -> None:
        """Skip one statement this reader does not interpret.

        It ends at a ``;`` outside brackets, or after a brace block outside brackets
        (``component X { ... }`` has no semicolon); brackets are known to be balanced.
        """
        depth = 0
        while self.current.kind is not TokenKind.END:
            token = self.advance()
            if token.kind is TokenKind.PUNCT and token.value in _OPENERS:
                depth += 1
            elif token.kind is TokenKind.PUNCT and token.value in _CLOSERS:
                depth -= 1
                if depth == 0 and token.value == "}":
                    if self.current.is_punct(";"):
                        self.advance()
                    return
                if depth < 0:
                    # The enclosing block's closer: leave it for the caller.
                    self.pos -= 1
                    return
            elif depth == 0 and token.is_punct(";"):
                return

    # -- top level -----------------------------------------------------------------------

    def parse_file(self) -> CamkesFile:
        while self.current.kind is not TokenKind.END:
            token = self.current
            if token.is_ident("import"):
                self.parse_import()
            elif token.is_ident("assembly"):
                self.parse_assembly()
            elif token.is_punct(";"):
                self.advance()
            else:
                if (
                    token.is_ident("component")
                    and self.peek().kind is TokenKind.IDENT
                    and self.peek(2).is_punct("{")
                ):
                    self.file.components.append(read_component(self.tokens, self.pos))
                self.skip_statement()
        return self.file

    def parse_import(self) -> None:
        keyword = self.advance()
        token = self.current
        if token.kind is TokenKind.STRING:
            self.advance()
            self.file.imports.append(Import(token.value, False, keyword.location))
        elif token.is_punct("<"):
            self.advance()
            parts: list[str] = []
            while not self.current.is_punct(">"):
                if self.current.kind is TokenKind.END or self.current.is_punct(";"):
                    raise Sel4VmmError(
                        "import <...> is missing its closing '>'",
                        location=token.location,
                        fix="add '>'",
                    )
                parts.append(self.advance().raw)
            self.advance()
            self.file.imports.append(Import("".join(parts), True, keyword.location))
        else:
            raise Sel4VmmError(
                f"expected a file name after import, found {_describe(token)}",
                location=token.location,
                fix='write import <file.camkes>; or import "file.camkes";',
            )
        self.expect_punct(";", "after the import")

    def parse_assembly(self) -> None:
        self.advance()
        if self.current.kind is TokenKind.IDENT:
            self.advance()  # assembly name
        self.expect_punct("{", "to open the assembly")
        while not self.current.is_punct("}"):
            token = self.current
            if token.kind is TokenKind.END:  # pragma: no cover - brackets were checked
                return
            is_block = self.peek().is_punct("{") or (
                self.peek().kind is TokenKind.IDENT and self.peek(2).is_punct("{")
            )
            if token.is_ident("composition") and is_block:
                self.parse_block(self.parse_composition_item)
            elif token.is_ident("configuration") and is_block:
                self.parse_block(self.parse_configuration_item)
            else:
                self.skip_statement()
        self.advance()
        if self.current.is_punct(";"):
            self.advance()

    def parse_block(self, parse_item: Callable[[], None]) -> None:
        self.advance()  # keyword
        if self.current.kind is TokenKind.IDENT:
            self.advance()  # block name
        self.expect_punct("{", "to open the block")
        while not self.current.is_punct("}"):
            if self.current.kind is TokenKind.END:  # pragma: no cover - brackets were checked
                return
            parse_item()
        self.advance()
        if self.current.is_punct(";"):
            self.advance()

    # -- composition and configuration ---------------------------------------------------

    def parse_composition_item(self) -> None:
        token = self.current
        if (
            token.is_ident("component")
            and self.peek().kind is TokenKind.IDENT
            and self.peek(2).kind is TokenKind.IDENT
            and self.peek(3).is_punct(";")
        ):
            type_name = self.peek().value
            name_token = self.peek(2)
            self.pos += 4
            self.file.instances.append(
                InstanceDecl(type_name, name_token.value, name_token.location)
            )
        elif token.is_punct(";"):
            self.advance()
        else:
            if token.is_ident("connection"):
                connection = read_connection(self.tokens, self.pos)
                if connection is not None:
                    self.file.connections.append(connection)
            self.skip_statement()

    def parse_configuration_item(self) -> None:
        start = self.pos
        token = self.current
        if token.kind is TokenKind.IDENT and self.peek().is_punct("."):
            names = [self.advance().value]
            while self.current.is_punct(".") and self.peek().kind is TokenKind.IDENT:
                self.advance()
                names.append(self.advance().value)
            if len(names) >= 2 and self.current.is_punct("="):
                self.advance()
                value = self.parse_value()
                self.expect_punct(";", f"after the value of {'.'.join(names)}")
                self.file.settings.append(
                    Setting(names[0], ".".join(names[1:]), value, token.location)
                )
                return
        self.pos = start
        if token.is_punct(";"):
            self.advance()
        else:
            self.skip_statement()

    # -- values --------------------------------------------------------------------------

    def parse_value(self) -> Value:
        return self.parse_binary(0)

    def parse_binary(self, level: int) -> Value:
        if level == len(_BINARY_LEVELS):
            return self.parse_unary()
        left = self.parse_binary(level + 1)
        while self.current.kind is TokenKind.PUNCT and self.current.value in _BINARY_LEVELS[level]:
            operator = self.advance()
            right = self.parse_binary(level + 1)
            left = IntValue(
                apply_operator(operator, _as_int(left, operator), _as_int(right, operator)),
                left.location,
            )
        return left

    def parse_unary(self) -> Value:
        # Iterative so that a long run of prefix operators cannot exhaust the stack.
        operators: list[Token] = []
        while self.current.kind is TokenKind.PUNCT and self.current.value in ("-", "+", "~", "!"):
            operators.append(self.advance())
        value = self.parse_primary()
        for operator in reversed(operators):
            operand = _as_int(value, operator)
            match operator.value:
                case "-":
                    result = -operand
                case "+":
                    result = operand
                case "~":
                    result = ~operand
                case _:
                    result = int(not operand)
            value = IntValue(result, operator.location)
        return value

    def parse_primary(self) -> Value:
        token = self.current
        if token.kind is TokenKind.NUMBER:
            self.advance()
            return IntValue(parse_c_integer(token.value, token.location), token.location)
        if token.kind is TokenKind.STRING:
            self.advance()
            text = token.value
            while self.current.kind is TokenKind.STRING:  # "a" "b" concatenates, as in C
                text += self.advance().value
            return StrValue(text, token.location)
        if token.kind is TokenKind.IDENT:
            self.advance()
            if token.value in ("true", "false"):
                return BoolValue(token.value == "true", token.location)
            if self.current.is_punct("("):
                return self.parse_call(token)
            return SymbolValue(token.value, token.location)
        if token.is_punct("("):
            self.advance()
            inner = self.parse_value()
            self.expect_punct(")", "to close the parenthesis")
            return inner
        if token.is_punct("["):
            return self.parse_list()
        if token.is_punct("{"):
            return self.parse_dict()
        raise Sel4VmmError(
            f"expected a value, found {_describe(token)}",
            location=token.location,
            fix="write a number, a string, true/false, a [list] or a {dictionary}",
        )

    def parse_call(self, name: Token) -> Value:
        self.advance()  # (
        arguments: list[Value] = []
        while not self.current.is_punct(")"):
            arguments.append(self.parse_value())
            if not self.current.is_punct(")"):
                self.expect_punct(",", f"between the arguments of {name.value}(...)")
        self.advance()
        return CallValue(name.value, tuple(arguments), name.location)

    def parse_list(self) -> Value:
        opener = self.advance()
        items: list[Value] = []
        while not self.current.is_punct("]"):
            items.append(self.parse_value())
            if not self.current.is_punct("]"):
                self.expect_punct(",", "between list items")
        self.advance()
        return ListValue(tuple(items), opener.location)

    def parse_dict(self) -> Value:
        opener = self.advance()
        entries: list[DictEntry] = []
        while not self.current.is_punct("}"):
            key = self.current
            if key.kind not in (TokenKind.STRING, TokenKind.IDENT):
                raise Sel4VmmError(
                    f"expected a dictionary key, found {_describe(key)}",
                    location=key.location,
                    fix='write "key" : value',
                )
            self.advance()
            self.expect_punct(":", f"after the key {key.value!r}")
            entries.append(DictEntry(key.value, self.parse_value(), key.location))
            if not self.current.is_punct("}"):
                self.expect_punct(",", "between dictionary entries")
        self.advance()
        return DictValue(tuple(entries), opener.location)


def _as_int(value: Value, operator: Token) -> int:
    if isinstance(value, IntValue):
        return value.value
    if isinstance(value, BoolValue):
        return int(value.value)
    kind = type(value).__name__.removesuffix("Value").lower()
    raise Sel4VmmError(
        f"'{operator.value}' needs numbers on both sides, found a {kind}",
        location=value.location,
        fix="use an integer here (is a macro undefined?)",
    )


def _describe(token: Token) -> str:
    if token.kind is TokenKind.END:
        return "the end of the file"
    return f"{token.kind.value} {token.raw or token.value!r}"


def parse_tokens(tokens: list[Token], path: str) -> CamkesFile:
    """Parse a token list (ending with ``END``) into a :class:`CamkesFile`."""
    check_balanced(tokens)
    return _Parser(tokens, path).parse_file()


def parse_text(text: str, path: str) -> CamkesFile:
    """Tokenize and parse preprocessed CAmkES text; the only exception is Sel4VmmError."""
    return parse_tokens(tokenize(text, path), path)


def parse_value_text(text: str, path: str) -> Value:
    """Parse one value on its own (the string inside ``"ram_base" : "0x40000000 + 0x1000"``)."""
    tokens = tokenize(text, path)
    check_balanced(tokens)
    parser = _Parser(tokens, path)
    value = parser.parse_value()
    if parser.current.kind is not TokenKind.END:
        raise Sel4VmmError(
            f"unexpected {_describe(parser.current)} after the value",
            location=parser.current.location,
        )
    return value
