"""Read and write test vector files (the format is tests/vectors/README.md).

>>> text = dump({"expect": "success", "comment": "demo", "key": b"\\x01\\x02"}, body=b"\\xff" * 3)
>>> print(text, end="")
expect: success
comment: demo
key: 0102
<BLANKLINE>
ffffff
>>> vector = parse(text)
>>> vector.expect, vector.fields["key"], vector.hex("key"), vector.body
('success', '0102', b'\\x01\\x02', b'\\xff\\xff\\xff')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BODY_BYTES_PER_LINE", "Vector", "dump", "load_dir", "parse"]

BODY_BYTES_PER_LINE = 64
_KEY = re.compile(r"[a-z][a-z0-9_]*")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")


@dataclass(frozen=True)
class Vector:
    name: str
    expect: str
    fields: dict[str, str]
    body: bytes | None = field(default=None, repr=False)

    def hex(self, key: str) -> bytes:
        """A field holding binary data, decoded from lowercase hex."""
        value = self.fields[key]
        if not _HEX.fullmatch(value):
            raise ValueError(f"{self.name}: expected lowercase hex in {key!r}, found {value!r}")
        return bytes.fromhex(value)


def dump(fields: dict[str, str | int | bytes], body: bytes | None = None) -> str:
    """The text of one vector file; ``fields`` must start with ``expect``."""
    keys = list(fields)
    if not keys or keys[0] != "expect":
        raise ValueError("expected 'expect' as the first field")
    lines = []
    for key, value in fields.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"expected a field name [a-z][a-z0-9_]*, found {key!r}")
        text = value.hex() if isinstance(value, bytes) else str(value)
        if "\n" in text or text != text.strip():
            raise ValueError(f"expected a one-line value without edge spaces in {key!r}")
        lines.append(f"{key}: {text}")
    if body is not None:
        lines.append("")
        step = BODY_BYTES_PER_LINE
        lines.extend(body[i : i + step].hex() for i in range(0, len(body), step))
    return "\n".join(lines) + "\n"


def parse(text: str, name: str = "<vector>") -> Vector:
    """Parse one vector file strictly (a malformed vector is a bug in its generator)."""
    if not text.endswith("\n"):
        raise ValueError(f"{name}: expected a final newline")
    lines = text[:-1].split("\n")
    fields: dict[str, str] = {}
    body: bytes | None = None
    for number, line in enumerate(lines):
        if line == "":
            body_hex = "".join(lines[number + 1 :])
            if not _HEX.fullmatch(body_hex):
                raise ValueError(f"{name}: expected a lowercase hex body")
            body = bytes.fromhex(body_hex)
            break
        key, sep, value = line.partition(": ")
        if not sep or not _KEY.fullmatch(key) or key in fields:
            raise ValueError(f"{name}: line {number + 1}: expected a new 'key: value' line")
        fields[key] = value
    if next(iter(fields), None) != "expect":
        raise ValueError(f"{name}: expected 'expect:' on the first line")
    return Vector(name, fields["expect"], fields, body)


def load_dir(directory: Path) -> list[Vector]:
    """Every vector file in ``directory``: files without a suffix, sorted by name."""
    paths = sorted(p for p in directory.iterdir() if p.is_file() and not p.suffix)
    return [parse(p.read_text(encoding="utf-8"), p.name) for p in paths]
