"""Base58btc and base36 for the multibase text forms ipfs-share prints and parses.

Pure and dependency-free, so both ``crypto`` (did:key, ``z6LS...``) and ``formats``
(``k51...`` IPNS names, CIDv0) use this one copy. Big-integer arithmetic runs in C, far
faster than a digit loop. Leading zero bytes map to leading zero digits, as multibase says.

>>> b58encode(b"\\x00\\x01\\x02"), b58decode("15T")
('15T', b'\\x00\\x01\\x02')
>>> b36encode(b"\\x01\\x72"), b36decode("aa")
('aa', b'\\x01r')
"""

from __future__ import annotations

import re

__all__ = ["B58_ALPHABET", "b36decode", "b36encode", "b58decode", "b58encode"]

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}
_B36_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_B36 = re.compile(r"[0-9a-z]*")


def _encode(raw: bytes, base: int, alphabet: str) -> str:
    n = int.from_bytes(raw, "big")
    digits = []
    while n:
        n, r = divmod(n, base)
        digits.append(alphabet[r])
    zeros = len(raw) - len(raw.lstrip(b"\x00"))
    return alphabet[0] * zeros + "".join(reversed(digits))


def _to_bytes(n: int, zeros: int) -> bytes:
    return b"\x00" * zeros + (n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b"")


def b58encode(raw: bytes) -> str:
    return _encode(raw, 58, B58_ALPHABET)


def b58decode(text: str) -> bytes:
    """Raises ValueError naming the first character that is not a base58btc digit."""
    n = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise ValueError(f"expected base58btc digits, found {char!r}")
        n = n * 58 + digit
    return _to_bytes(n, len(text) - len(text.lstrip("1")))


def b36encode(raw: bytes) -> str:
    return _encode(raw, 36, _B36_ALPHABET)


def b36decode(text: str) -> bytes:
    """Lower-case base36 only (the canonical form); raises ValueError otherwise."""
    if not _B36.fullmatch(text):
        raise ValueError(f"expected lower-case base36 digits, found {text[:40]!r}")
    return _to_bytes(int(text, 36) if text else 0, len(text) - len(text.lstrip("0")))
