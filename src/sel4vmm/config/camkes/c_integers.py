"""C integers as CAmkES evaluates them: literals and the operators of its expressions.

CAmkES attribute values are C: ``0x40000000``, ``1 << 27``, ``0x1fffffff & ~0x1fffe``.
C's integers have at most 64 bits, and so do these: a literal or a result beyond that is a
located error, not an ever-growing Python integer (issue 10: a shift or a literal of
thousands of digits must not take gigabytes and minutes).
"""

from __future__ import annotations

from sel4vmm.config.camkes.lexer import Token
from sel4vmm.errors import Location, Sel4VmmError

#: CAmkES evaluates integers as C does, in at most 64 bits (signed or unsigned); anything
#: larger is an error here rather than an ever-growing Python integer.
C_INTEGER_MAX = (1 << 64) - 1
C_INTEGER_MIN = -(1 << 63)
#: ``0b`` and 64 binary digits, with room for digit separators.
MAX_LITERAL_CHARS = 70


def parse_c_integer(text: str, location: Location) -> int:
    """A C integer literal: decimal, ``0x`` hex, ``0b`` binary, leading-0 octal, u/l suffixes."""
    body = text.rstrip("uUlL").strip()
    negative = body.startswith("-")
    if negative:
        body = body[1:].strip()
    if len(body) > MAX_LITERAL_CHARS:
        raise Sel4VmmError(
            f"'{text[:40]}...' ({len(text)} characters) is too long to be a C integer",
            location=location,
            fix="write a number that fits in 64 bits",
        )
    try:
        if body[:2].lower() == "0x":
            value = int(body[2:], 16)
        elif body[:2].lower() == "0b":
            value = int(body[2:], 2)
        elif len(body) > 1 and body.startswith("0"):
            value = int(body[1:], 8)
        else:
            value = int(body, 10)
    except ValueError:
        raise Sel4VmmError(
            f"'{text}' is not an integer",
            location=location,
            fix="write a decimal or 0x-prefixed hexadecimal integer",
        ) from None
    if value > C_INTEGER_MAX:
        raise Sel4VmmError(
            f"'{text}' does not fit in 64 bits",
            location=location,
            fix="write a number below 2^64",
        )
    return -value if negative else value


def apply_operator(operator: Token, left: int, right: int) -> int:
    op = operator.value
    if op in ("/", "%") and right == 0:
        raise Sel4VmmError(
            "division by zero", location=operator.location, fix="divide by a non-zero number"
        )
    if op in ("<<", ">>") and not 0 <= right < 128:
        raise Sel4VmmError(
            f"shift by {right} bits", location=operator.location, fix="shift by 0 to 127 bits"
        )
    result = _operate(op, left, right)
    if not C_INTEGER_MIN <= result <= C_INTEGER_MAX:
        raise Sel4VmmError(
            f"{left} {op} {right} does not fit in 64 bits",
            location=operator.location,
            fix="keep the expression's values below 2^64",
        )
    return result


def _operate(op: str, left: int, right: int) -> int:
    match op:
        case "/":
            return (
                abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
            )  # C truncates
        case "%":
            return (
                left
                - (abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)) * right
            )
        case "|":
            return left | right
        case "^":
            return left ^ right
        case "&":
            return left & right
        case "+":
            return left + right
        case "-":
            return left - right
        case "*":
            return left * right
        case "<<":
            return left << right
        case _:
            return left >> right
