"""How the checker words its findings: our format and, alongside it, the Microkit tool's.

Users of ``sel4vmm check`` see ``file:line:col: error: message``.  People porting a system
from the real ``microkit`` tool also want the exact sentence that tool prints (its test
suite compares them verbatim), so every :class:`Diagnostic` keeps both renderings: the
``message`` (the tool's sentence without its ``Error:`` prefix and location suffix) and the
``tool_text`` (the tool's complete line, location and all).

The tool attaches locations in several styles (``on element 'x': f:l:c``, ``@ f:l:c``,
``: f:l:c``); the constructors below are named after those styles so each check says which
one the tool uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sel4vmm.config.spec import Finding
from sel4vmm.errors import Location, Sel4VmmError

if TYPE_CHECKING:
    from sel4vmm.config.microkit.preprocess import LineMap
    from sel4vmm.config.microkit.xmlsource import XmlElement


@dataclass(frozen=True)
class SourceFile:
    """The text being checked and the name it is reported under."""

    #: The name the tool would print (the path as the user gave it).
    name: str
    text: str
    #: For preprocessed text: output line -> (file, line) it came from.
    line_map: LineMap | None = None

    def location(self, line: int, column: int) -> Location:
        if self.line_map is not None:
            origin = self.line_map.origin(line)
            if origin is not None:
                return Location(origin[0], origin[1], column)
        return Location(self.name, line, column)


def location_text(location: Location) -> str:
    """``file:line:col`` exactly as the tool prints it."""
    return f"{location.path}:{location.line}:{location.column}"


@dataclass(frozen=True)
class Diagnostic:
    """One finding, in both our words and the Microkit tool's."""

    severity: str  # "error" | "warning"
    message: str
    location: Location | None
    tool_text: str
    fix: str | None = None

    def to_finding(self) -> Finding:
        return Finding(self.severity, self.message, self.location, self.fix)

    def __str__(self) -> str:
        return str(self.to_finding())


class MicrokitError(Sel4VmmError):
    """A system description the Microkit tool would reject; carries its diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message, location=diagnostic.location, fix=diagnostic.fix)
        self.diagnostic = diagnostic

    @classmethod
    def plain(
        cls,
        tool_text: str,
        *,
        location: Location | None = None,
        message: str | None = None,
        fix: str | None = None,
    ) -> MicrokitError:
        """An error whose tool text is given whole (the tool adds no ``Error:`` prefix)."""
        return cls(Diagnostic("error", message or tool_text, location, tool_text, fix))

    @classmethod
    def bare(
        cls, text: str, *, location: Location | None = None, fix: str | None = None
    ) -> MicrokitError:
        """``Error: text`` -- the tool prints no location, we still keep one if known."""
        return cls(Diagnostic("error", text, location, f"Error: {text}", fix))

    @classmethod
    def at(
        cls, text: str, location: Location, *, message: str | None = None, fix: str | None = None
    ) -> MicrokitError:
        """``Error: text @ file:line:col``."""
        tool_text = f"Error: {text} @ {location_text(location)}"
        return cls(Diagnostic("error", message or text, location, tool_text, fix))

    @classmethod
    def colon(cls, text: str, location: Location, *, fix: str | None = None) -> MicrokitError:
        """``Error: text: file:line:col``."""
        return cls(
            Diagnostic("error", text, location, f"Error: {text}: {location_text(location)}", fix)
        )

    @classmethod
    def on_element(cls, element: XmlElement, text: str, *, fix: str | None = None) -> MicrokitError:
        """``Error: text on element 'tag': file:line:col`` (the tool's ``value_error``)."""
        message = f"{text} on element '{element.tag}'"
        return cls.colon(message, element.location, fix=fix)

    @classmethod
    def missing_attribute(cls, element: XmlElement, attribute: str) -> MicrokitError:
        """The tool's ``checked_lookup``: "Missing required attribute ..." (capital M)."""
        return cls.colon(
            f"Missing required attribute '{attribute}' on element '{element.tag}'",
            element.location,
            fix=f'add {attribute}="..." to this <{element.tag}>',
        )

    @classmethod
    def crash(
        cls, element: XmlElement, what: str, panic: str, *, fix: str | None = None
    ) -> MicrokitError:
        """A file the Microkit tool does not reject but *panics* on.

        ``panic`` is the panic's payload as Rust prints it (for ``unwrap()`` on a parse
        error: ``called `Result::unwrap()` on an `Err` value: ParseIntError { kind:
        InvalidDigit }``); the tool prints it after ``thread 'main' panicked at <its
        source position>:``, which we cannot know and leave out.
        """
        message = f"the Microkit tool would crash on {what} (it panics instead of reporting it)"
        return cls(
            Diagnostic(
                "error",
                message,
                element.location,
                f"thread 'main' panicked: {panic}",
                fix,
            )
        )


def warning(text: str, location: Location | None, *, fix: str | None = None) -> Diagnostic:
    """A warning, printed by the tool as ``WARNING: text``."""
    return Diagnostic("warning", text, location, f"WARNING: {text}", fix)
