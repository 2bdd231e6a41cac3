"""Text from memory, files and models made safe to print on a terminal.

What the command line prints was typed, pasted or read from a file by someone else, or
written by a model. Printed as it is, an escape sequence in it drives the terminal: the
turn ``"hi\\x1b[2J\\x1b]0;TITLE\\x07"`` clears the screen and retitles the window when
``agentmem memory search`` shows it, and a lone carriage return lets later text overwrite
what a line said. rich does not prevent it: its ``Text`` drops BEL, backspace, vertical
tab, form feed and carriage return, but passes ESC and the C1 controls through.

Turns are refused when they hold control characters (:mod:`agentmem.inputs`), but a data
folder written before that rule, an id, a LoCoMo file name or a model's answer may still
hold them; so every print of such text in the command line goes through this module.
Control characters are shown, not dropped: the C0 ones and DEL as their Unicode control
pictures (``␛`` for ESC, ``␀`` for NUL), the C1 ones as ``\\x9b``-style escapes (they have
no pictures). Tab, line feed and a carriage return before a line feed are layout, and kept.
"""

from __future__ import annotations

import re

from rich.markup import escape
from rich.text import Text

#: What :func:`visible` replaces: every control character but tab and line feed, and a
#: carriage return not ending a line.
_CONTROL = re.compile(r"\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_PICTURES = 0x2400  # U+2400 SYMBOL FOR NULL: the pictures of U+0000-U+001F follow in order
_DELETE_PICTURE = "\u2421"


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(_PICTURES + code)
    if code == 0x7F:
        return _DELETE_PICTURE
    return f"\\x{code:02x}"


def visible(text: str) -> str:
    """Return ``text`` with its control characters shown as symbols (see the module)."""
    return _CONTROL.sub(_picture, text)


def shown(text: str, style: str = "") -> Text:
    """Return ``text`` as a rich ``Text`` safe to print: controls visible, no markup."""
    return Text(visible(text), style=style)


def markup_safe(text: str) -> str:
    """Return ``text`` to put inside a rich markup string: controls visible, brackets escaped."""
    return escape(visible(text))


__all__ = ["markup_safe", "shown", "visible"]
