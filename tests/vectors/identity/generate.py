"""Generate the identity document vectors (docs/spec/identity.md).

Run from the repository root: ``.venv/bin/python tests/vectors/identity/generate.py``.
The body is the document's dag-cbor bytes. Fields: ``did`` (when present, the identity
the reader expects, so another signer is refused), ``identity_seed`` (test key: the
reader re-derives the revocation list's name from it), ``cid`` and ``enc`` (success).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import vectorfile  # noqa: E402

from ipfs_share.crypto.labels import LABEL_IDENTITY  # noqa: E402
from ipfs_share.crypto.random import DeterministicRng  # noqa: E402
from ipfs_share.crypto.signing import SigningKey  # noqa: E402
from ipfs_share.crypto.x25519 import EncryptionKey  # noqa: E402
from ipfs_share.formats import dagcbor  # noqa: E402
from ipfs_share.formats.identity_doc import make_identity_document  # noqa: E402
from ipfs_share.formats.signed import did_key  # noqa: E402

CREATED = 1_800_000_000


def _keys(scenario: str) -> tuple[SigningKey, EncryptionKey, DeterministicRng]:
    rng = DeterministicRng(b"ipfs-share/vectors/identity/" + scenario.encode())
    return SigningKey.generate(rng), EncryptionKey.generate(rng), rng


def _signed(value: dict[str, Any], key: SigningKey) -> bytes:
    """Sign any map as an identity document would be (for objects the encoder refuses)."""
    body = {k: v for k, v in value.items() if k != "sig"}
    body["sig"] = key.sign(LABEL_IDENTITY + dagcbor.encode(body))
    return dagcbor.encode(body)


def build() -> dict[str, str]:
    """Scenario name -> file text."""
    files: dict[str, str] = {}

    def failure(name: str, expect: str, comment: str, body: bytes, **extra: Any) -> None:
        files[name] = vectorfile.dump({"expect": expect, "comment": comment, **extra}, body=body)

    key, enc, _ = _keys("success")
    doc = make_identity_document(key, enc.public_key, seq=0, created=CREATED)
    files["success"] = vectorfile.dump(
        {
            "expect": "success",
            "comment": "a first document (seq 0); the revocations name derives from the seed",
            "did": doc.did,
            "identity_seed": key.seed_bytes(),
            "enc": bytes(enc.public_key),
            "cid": doc.cid,
        },
        body=doc.data,
    )

    key, enc, _ = _keys("success_seq")
    doc = make_identity_document(key, enc.public_key, seq=41, created=CREATED + 86_400)
    files["success_seq"] = vectorfile.dump(
        {
            "expect": "success",
            "comment": "a later document (seq 41), read without an expected did",
            "identity_seed": key.seed_bytes(),
            "enc": bytes(enc.public_key),
            "cid": doc.cid,
        },
        body=doc.data,
    )

    key, enc, _ = _keys("bad_signature")
    data = bytearray(make_identity_document(key, enc.public_key, seq=0, created=CREATED).data)
    data[data.index(b"\x63sig\x58\x40") + 6] ^= 0x01  # the first byte of the signature
    failure("bad_signature", "signature_invalid", "one bit of sig flipped", bytes(data))

    key, enc, rng = _keys("wrong_signer")
    other = SigningKey.generate(rng)
    doc = make_identity_document(other, enc.public_key, seq=0, created=CREATED)
    failure(
        "wrong_signer",
        "signature_invalid",
        "a valid document of another identity than the did the reader asked for",
        doc.data,
        did=did_key(key.public_key),
    )

    key, enc, rng = _keys("forged_did")
    other = SigningKey.generate(rng)
    value = dagcbor.decode(make_identity_document(key, enc.public_key, seq=0, created=CREATED).data)
    failure(
        "forged_did",
        "signature_invalid",
        "names one did but is signed by another key",
        _signed(value, other),
    )

    key, enc, _ = _keys("unknown_version")
    value = dagcbor.decode(make_identity_document(key, enc.public_key, seq=0, created=CREATED).data)
    failure(
        "unknown_version",
        "format_invalid",
        "v is 2 (validly signed): refused before the signature is read",
        _signed({**value, "v": 2}, key),
    )

    key, enc, _ = _keys("extra_field")
    value = dagcbor.decode(make_identity_document(key, enc.public_key, seq=0, created=CREATED).data)
    failure(
        "extra_field",
        "format_invalid",
        "an unknown key 'name' (validly signed): the key set is closed",
        _signed({**value, "name": "alice"}, key),
    )

    key, enc, _ = _keys("missing_field")
    value = dagcbor.decode(make_identity_document(key, enc.public_key, seq=0, created=CREATED).data)
    del value["enc"]
    failure("missing_field", "format_invalid", "no 'enc' (validly signed)", _signed(value, key))

    key, enc, _ = _keys("oversize")
    value = dagcbor.decode(make_identity_document(key, enc.public_key, seq=0, created=CREATED).data)
    value["enc"] = bytes(1024)
    failure(
        "oversize",
        "format_invalid",
        "over 1024 bytes (a 1024-byte enc, validly signed): refused before parsing",
        _signed(value, key),
    )

    key, enc, _ = _keys("short_enc")
    value = dagcbor.decode(make_identity_document(key, enc.public_key, seq=0, created=CREATED).data)
    value["enc"] = bytes(enc.public_key)[:31]
    failure("short_enc", "format_invalid", "a 31-byte X25519 key", _signed(value, key))

    key, enc, _ = _keys("noncanonical_name")
    value = dagcbor.decode(make_identity_document(key, enc.public_key, seq=0, created=CREATED).data)
    value["revocations"] = "/ipns/" + value["revocations"]
    failure(
        "noncanonical_name",
        "format_invalid",
        "revocations written with an /ipns/ prefix: only the bare k51... form is accepted",
        _signed(value, key),
    )

    key, enc, _ = _keys("unsorted_keys")
    data = make_identity_document(key, enc.public_key, seq=0, created=CREATED).data
    # Swap the first two entries ("v" and "did"): same map, non-canonical key order.
    v_entry = data[1:4]  # 61 76 01
    did_end = 4 + 4 + 2 + 56  # key "did" (1 + 3 bytes), text head (2 bytes), 56 chars
    swapped = data[:1] + data[4:did_end] + v_entry + data[did_end:]
    failure(
        "unsorted_keys",
        "format_invalid",
        "the same map with 'did' before 'v': not canonical dag-cbor",
        swapped,
    )
    return files


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
