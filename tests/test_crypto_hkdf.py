"""HKDF-SHA-256 against RFC 5869's test vectors (appendix A, cases 1-3)."""

from __future__ import annotations

import doctest

import pytest

from ipfs_share.crypto import hkdf as hkdf_module
from ipfs_share.crypto.hkdf import MAX_LENGTH, hkdf, hkdf_expand, hkdf_extract

RFC5869 = [
    pytest.param(
        "0b" * 22,
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        42,
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        id="case1-basic",
    ),
    pytest.param(
        bytes(range(0x00, 0x50)).hex(),
        bytes(range(0x60, 0xB0)).hex(),
        bytes(range(0xB0, 0x100)).hex(),
        82,
        "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
        id="case2-long-inputs",
    ),
    pytest.param(
        "0b" * 22,
        "",
        "",
        42,
        "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        id="case3-empty-salt-and-info",
    ),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "prk", "okm"), RFC5869)
def test_rfc5869(ikm: str, salt: str, info: str, length: int, prk: str, okm: str) -> None:
    ikm_b, salt_b, info_b = bytes.fromhex(ikm), bytes.fromhex(salt), bytes.fromhex(info)
    assert hkdf_extract(salt_b, ikm_b).hex() == prk
    assert hkdf_expand(bytes.fromhex(prk), info_b, length).hex() == okm
    assert hkdf(ikm_b, salt=salt_b, info=info_b, length=length).hex() == okm


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "prk", "okm"), RFC5869)
def test_fast_path_agrees_with_the_general_one(
    ikm: str, salt: str, info: str, length: int, prk: str, okm: str
) -> None:
    # hkdf() has a one-block shortcut for 32-byte outputs; it must equal expand()'s prefix.
    ikm_b, salt_b, info_b = bytes.fromhex(ikm), bytes.fromhex(salt), bytes.fromhex(info)
    assert hkdf(ikm_b, salt=salt_b, info=info_b, length=32).hex() == okm[:64]


def test_lengths() -> None:
    assert hkdf(b"k", salt=b"", info=b"", length=0) == b""
    assert len(hkdf(b"k", salt=b"", info=b"", length=MAX_LENGTH)) == MAX_LENGTH
    with pytest.raises(ValueError, match=r"0\.\.8160"):
        hkdf(b"k", salt=b"", info=b"", length=MAX_LENGTH + 1)
    with pytest.raises(ValueError, match="prk of at least 32"):
        hkdf_expand(b"short", b"", 32)


def test_doctests() -> None:
    assert doctest.testmod(hkdf_module).failed == 0
