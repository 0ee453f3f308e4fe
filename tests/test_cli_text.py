"""The escaping helper every human printer uses for text a peer controls."""

from __future__ import annotations

import pytest

from ipfs_share.cli.text import printable, printable_text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain.txt", "plain.txt"),
        ("日本語 ファイル.pdf", "日本語 ファイル.pdf"),
        ("emoji 🎉.png", "emoji 🎉.png"),
        ("esc\x1b[2Jclear", "esc\\x1b[2Jclear"),
        ("two\nlines", "two\\nlines"),
        ("cr\rover", "cr\\rover"),
        ("bell\x07", "bell\\x07"),
        ("del\x7f", "del\\x7f"),
        ("c1\x9b31m", "c1\\x9b31m"),  # CSI as one C1 character
        ("\u202etxt.exe", "\\u202etxt.exe"),  # right-to-left override
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("sep\u2028line", "sep\\u2028line"),
        ("bad\udcffbyte", "bad\\udcffbyte"),  # an undecodable byte of a file name
    ],
)
def test_printable_escapes_what_a_terminal_acts_on(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(raw).isprintable()


def test_printable_text_keeps_lines_and_escapes_the_rest() -> None:
    assert printable_text("a\nb\x1b]0;title\x07") == "a\nb\\x1b]0;title\\x07"
    assert printable_text("a\r\nb") == "a\\r\nb"
