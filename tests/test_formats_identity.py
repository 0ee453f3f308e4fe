"""Identity documents: the binding of the X25519 key, the revocation list's name."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from ipfs_share.crypto.labels import LABEL_IDENTITY
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.errors import FormatError, SignatureInvalidError
from ipfs_share.formats import dagcbor
from ipfs_share.formats import identity_doc as identity_module
from ipfs_share.formats.identity_doc import (
    decode_identity_document,
    identity_ipns_name,
    make_identity_document,
    revocation_key,
)
from ipfs_share.formats.ipns import ipns_name
from ipfs_share.formats.signed import did_key

KEY = SigningKey.from_seed(b"\x01" * 32)
ENC = EncryptionKey(b"\x02" * 32)
OTHER = SigningKey.from_seed(b"\x03" * 32)


def _resigned(value: dict[str, Any], key: SigningKey = KEY) -> bytes:
    body = {k: v for k, v in value.items() if k != "sig"}
    body["sig"] = key.sign(LABEL_IDENTITY + dagcbor.encode(body))
    return dagcbor.encode(body)


def test_docstring_examples() -> None:
    assert doctest.testmod(identity_module).failed == 0


def test_round_trip() -> None:
    doc = make_identity_document(KEY, ENC.public_key, seq=3, created=1_800_000_000)
    assert decode_identity_document(doc.data, did=did_key(KEY.public_key)) == doc
    assert doc.enc == ENC.public_key and doc.verify_key == KEY.public_key
    assert identity_ipns_name(doc.did) == ipns_name(KEY.public_key)
    # The revocation key is derived, distinct, and stable.
    assert revocation_key(KEY) == revocation_key(SigningKey.from_seed(b"\x01" * 32))
    assert revocation_key(KEY).public_key != KEY.public_key
    assert repr(revocation_key(KEY)) == "SigningKey(<redacted>)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"enc": b"\x00" * 31}, "32 bytes"),
        ({"revocations": "k51nope"}, "IPNS name"),
        ({"revocations": "/ipns/" + ipns_name(KEY.public_key)}, "IPNS name|k51"),
        ({"seq": -1}, "2\\^63-1"),
        ({"v": 0}, "version 1"),
        ({"name": "alice"}, "unknown 'name'"),
    ],
)
def test_refusals(change: dict[str, Any], message: str) -> None:
    doc = make_identity_document(KEY, ENC.public_key, seq=0, created=1_800_000_000)
    value = {**dagcbor.decode(doc.data), **change}
    with pytest.raises(FormatError, match=message):
        decode_identity_document(_resigned(value))


def test_revocation_name_in_base32_is_not_canonical() -> None:
    from ipfs_share.formats.cid import parse_cid

    doc = make_identity_document(KEY, ENC.public_key, seq=0, created=1_800_000_000)
    value = dagcbor.decode(doc.data)
    value["revocations"] = str(parse_cid(value["revocations"]))  # the same name, base32
    with pytest.raises(FormatError, match="canonical"):
        decode_identity_document(_resigned(value))


def test_signature_refusals() -> None:
    doc = make_identity_document(KEY, ENC.public_key, seq=0, created=1_800_000_000)
    with pytest.raises(SignatureInvalidError):
        decode_identity_document(doc.data, did=did_key(OTHER.public_key))
    with pytest.raises(SignatureInvalidError):
        decode_identity_document(_resigned(dagcbor.decode(doc.data), OTHER))
