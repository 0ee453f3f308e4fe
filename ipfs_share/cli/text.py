"""Text a peer controls, made safe to print: control characters shown as escapes.

A file name, a petname, a capsule's name or an error message quoting any of them can
hold characters a terminal acts on instead of showing: ESC starts a sequence that can
recolour, move the cursor, retitle the window or hide the rest of the line; a newline
forges a line of output; a right-to-left override reverses what follows. Every human
printer passes such fields through :func:`printable`, and the CLI's output functions pass
whole blocks through :func:`printable_text` as a last guard.

Escapes look like Python's: ``\\x1b``, ``\\n``, ``\\u202e``. Characters that print (any
script, emoji, spaces) are left alone, so ordinary names are shown as they are.

>>> printable("report.pdf"), printable("résumé 2026.txt")
('report.pdf', 'résumé 2026.txt')
>>> print(printable("evil\\x1b[2Jname\\nline two"))
evil\\x1b[2Jname\\nline two
>>> printable("\\u202etxt.exe")
'\\\\u202etxt.exe'
>>> printable_text("one\\ntwo\\x07")
'one\\ntwo\\\\x07'
"""

from __future__ import annotations

__all__ = ["printable", "printable_text"]

# Named escapes for the few controls people recognise; everything else gets \xNN or \uNNNN.
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Categories that do not print: controls, format characters (bidi overrides, zero-width),
# surrogates (undecodable bytes of a file name), line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escape(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escaped(text: str) -> str:
    import unicodedata  # only on the slow path: almost every name is printable

    return "".join(
        _escape(ch) if ch in _NAMED or unicodedata.category(ch) in _HIDDEN else ch for ch in text
    )


def printable(text: str) -> str:
    """``text`` as one line a terminal shows as it is: every control, format and separator
    character (newline included) replaced by its escape.

    >>> printable("a\\tb"), printable("\\udcff")
    ('a\\\\tb', '\\\\udcff')
    """
    if text.isprintable():  # the fast path: no character to escape (space is printable)
        return text
    return _escaped(text)


def printable_text(text: str) -> str:
    """Like :func:`printable` for a block of several lines: newlines are kept.

    >>> printable_text("line one\\nline \\x1b[31mtwo")
    'line one\\nline \\\\x1b[31mtwo'
    """
    if text.isprintable():
        return text
    return "\n".join(_escaped(line) for line in text.split("\n"))
