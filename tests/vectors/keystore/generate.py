"""Generate the key file vectors (docs/spec/keystore.md).

Run from the repository root: ``.venv/bin/python tests/vectors/keystore/generate.py``.
Each scenario has the passphrase to try, the did the file must open to (for success),
and the key file bytes as the body. The KDF cost is the minimum so the tests stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import vectorfile  # noqa: E402

from ipfs_share.crypto.passphrase import KdfParams  # noqa: E402
from ipfs_share.crypto.random import DeterministicRng  # noqa: E402
from ipfs_share.crypto.signing import SigningKey  # noqa: E402
from ipfs_share.crypto.x25519 import EncryptionKey  # noqa: E402
from ipfs_share.formats import dagcbor  # noqa: E402
from ipfs_share.formats.keystore import IdentityKeys, KeyFile  # noqa: E402

PASSPHRASE = "correct horse battery staple"
FAST = KdfParams.fastest()


def _keys(rng: DeterministicRng) -> IdentityKeys:
    return IdentityKeys(SigningKey.generate(rng), EncryptionKey.generate(rng))


def _sealed(name: str) -> tuple[IdentityKeys, bytes]:
    rng = DeterministicRng(b"ipfs-share/vectors/keystore/" + name.encode())
    keys = _keys(rng)
    key_file = KeyFile.create(
        "alice", keys, created=1700000000, passphrase=PASSPHRASE.encode(), params=FAST, rng=rng
    )
    return keys, key_file.encode()


def _edit(data: bytes, **changes: object) -> bytes:
    m = dagcbor.decode(data)
    for key, value in changes.items():
        if value is ...:
            del m[key]
        else:
            m[key] = value
    return dagcbor.encode(m)


def build() -> dict[str, str]:
    files: dict[str, str] = {}

    def add(name: str, expect: str, comment: str, body: bytes, did: str = "") -> None:
        fields: dict[str, str | int | bytes] = {"expect": expect, "comment": comment}
        fields["passphrase"] = PASSPHRASE
        if did:
            fields["did"] = did
        files[name] = vectorfile.dump(fields, body=body)

    keys, data = _sealed("success")
    add("success", "success", "a sealed key file opens to its did", data, keys.did)

    rng = DeterministicRng(b"ipfs-share/vectors/keystore/success_unsealed")
    plain_keys = _keys(rng)
    plain = KeyFile.create("dev", plain_keys, created=1700000000, passphrase=None).encode()
    add("success_unsealed", "success", "an unsealed (development) key file", plain, plain_keys.did)

    keys, data = _sealed("wrong_passphrase")
    files["wrong_passphrase"] = vectorfile.dump(
        {
            "expect": "passphrase_invalid",
            "comment": "the file is fine; the passphrase tried is not its passphrase",
            "passphrase": "correct horse battery stapler",
        },
        body=data,
    )

    keys, data = _sealed("tampered_secret")
    m = dagcbor.decode(data)
    flipped = bytearray(m["secret"])
    flipped[5] ^= 0x01
    add(
        "tampered_secret",
        "passphrase_invalid",
        "one bit of the sealed secret flipped: the AEAD tag fails, like a wrong passphrase",
        _edit(data, secret=bytes(flipped)),
    )

    keys, data = _sealed("moved_under_another_did")
    other = _keys(DeterministicRng(b"ipfs-share/vectors/keystore/other"))
    add(
        "moved_under_another_did",
        "passphrase_invalid",
        "the sealed secret of one identity under another's did and enc: the AAD no longer matches",
        _edit(data, did=other.did, enc=bytes(other.enc_public)),
    )

    add(
        "unsealed_wrong_keys",
        "format_invalid",
        "an unsealed file whose secrets are not the keys of the did it names",
        _edit(plain, did=other.did, enc=bytes(other.enc_public)),
    )

    keys, data = _sealed("unknown_version")
    add("unknown_version", "format_invalid", "v is 2", _edit(data, v=2))
    add("extra_field", "format_invalid", "an unknown key", _edit(data, comment="hi"))
    add("missing_field", "format_invalid", "no created", _edit(data, created=...))
    kdf = dict(dagcbor.decode(data)["kdf"])
    kdf["ops"] = 33
    add(
        "kdf_cost_too_high",
        "format_invalid",
        "ops 33 is refused before running argon2id, so a file cannot make us spend minutes",
        _edit(data, kdf=kdf),
    )
    kdf = dict(dagcbor.decode(data)["kdf"])
    kdf["alg"] = "scrypt"
    add("unknown_kdf", "format_invalid", "only argon2id13 is defined", _edit(data, kdf=kdf))
    add("bad_name", "format_invalid", "a name that reads as a did", _edit(data, name="did:key:x"))
    add(
        "oversize",
        "format_invalid",
        "over 4096 bytes: refused before decoding",
        _edit(data, name="a") + b"\x00" * 4096,
    )
    add("trailing_data", "format_invalid", "one byte after the map", data + b"\x00")
    return files


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
