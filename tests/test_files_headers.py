"""The files service keeps the headers it authenticated: the same bytes under the same
file key are not decoded again, and nothing else is ever served from what it keeps."""

from __future__ import annotations

import pytest

from ipfs_share.crypto.stream import FileKey
from ipfs_share.errors import DecryptionError
from ipfs_share.formats.envelope import encrypt, header_length
from ipfs_share.services.files import HeaderCache


def _blob(key: FileKey, name: str = "a.txt") -> bytes:
    return encrypt(key, b"hello", name=name)


def _header(blob: bytes) -> bytes:
    length = header_length(blob[:26])
    assert length is not None
    return blob[:length]


def test_a_header_is_decoded_once_per_key_and_bytes() -> None:
    key = FileKey.generate()
    header = _header(_blob(key))
    cache = HeaderCache()
    first = cache.decode(header, key)
    assert cache.decode(header, key) is first
    assert len(cache) == 1


def test_another_key_or_other_bytes_are_checked_afresh() -> None:
    key, other = FileKey.generate(), FileKey.generate()
    header = _header(_blob(key))
    cache = HeaderCache()
    cache.decode(header, key)
    with pytest.raises(DecryptionError):
        cache.decode(header, other)  # held under key: never served for another key
    tampered = bytearray(header)
    tampered[-1] ^= 1
    with pytest.raises(DecryptionError):
        cache.decode(bytes(tampered), key)
    assert len(cache) == 1  # failures are not held


def test_the_cache_is_bounded() -> None:
    cache = HeaderCache(limit=2)
    keys = [FileKey.generate() for _ in range(3)]
    headers = [_header(_blob(k)) for k in keys]
    for key, header in zip(keys, headers, strict=True):
        cache.decode(header, key)
    assert len(cache) == 2
    again = cache.decode(headers[0], keys[0])  # the oldest went out: decoded afresh
    assert again.metadata.name == "a.txt"
    assert len(cache) == 2
