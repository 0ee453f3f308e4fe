"""Generate the recipient stanza vectors (docs/spec/keys.md, "Recipient stanzas").

Run from the repository root: ``.venv/bin/python tests/vectors/stanza/generate.py``.
Each scenario has an identity (the X25519 secret key that tries to unwrap), a body of
concatenated 80-byte stanzas, and the expected outcome.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import vectorfile  # noqa: E402

from ipfs_share.crypto.random import DeterministicRng  # noqa: E402
from ipfs_share.crypto.stream import FileKey  # noqa: E402
from ipfs_share.crypto.wrap import Stanza, wrap  # noqa: E402
from ipfs_share.crypto.x25519 import EncryptionKey  # noqa: E402


def _rng(scenario: str) -> DeterministicRng:
    return DeterministicRng(b"ipfs-share/vectors/stanza/" + scenario.encode())


def _vector(
    expect: str,
    comment: str,
    me: EncryptionKey,
    stanzas: list[Stanza],
    file_key: FileKey | None,
) -> str:
    fields: dict[str, str | int | bytes] = {
        "expect": expect,
        "comment": comment,
        "identity": me.secret_bytes(),
        "recipient": me.public_key.to_text(),
    }
    if file_key is not None:
        fields["file_key"] = file_key.secret_bytes()
    return vectorfile.dump(fields, body=b"".join(bytes(s) for s in stanzas))


def build() -> dict[str, str]:
    """Scenario name -> file text."""
    files: dict[str, str] = {}

    def scenario(name: str) -> tuple[DeterministicRng, EncryptionKey, FileKey]:
        rng = _rng(name)
        return rng, EncryptionKey.generate(rng), FileKey.generate(rng)

    rng, me, file_key = scenario("success")
    files["success"] = _vector(
        "success",
        "one stanza, for this identity",
        me,
        wrap(file_key, [me.public_key], rng),
        file_key,
    )

    rng, me, file_key = scenario("success_among_several")
    others = [EncryptionKey.generate(rng).public_key for _ in range(2)]
    stanzas = wrap(file_key, [others[0], me.public_key, others[1]], rng)
    files["success_among_several"] = _vector(
        "success", "three stanzas; the second is this identity's", me, stanzas, file_key
    )

    rng, me, file_key = scenario("wrong_recipient")
    other = EncryptionKey.generate(rng)
    files["wrong_recipient"] = _vector(
        "recipient_not_authorized",
        "the only stanza was made for another key",
        me,
        wrap(file_key, [other.public_key], rng),
        None,
    )

    rng, me, file_key = scenario("tampered_body")
    (stanza,) = wrap(file_key, [me.public_key], rng)
    body = bytearray(stanza.body)
    body[5] ^= 0x01  # one bit of the wrapped file key
    files["tampered_body"] = _vector(
        "recipient_not_authorized",
        "this identity's stanza with one body bit flipped: indistinguishable from another's",
        me,
        [Stanza(stanza.ephemeral, bytes(body))],
        None,
    )

    rng, me, file_key = scenario("tampered_ephemeral")
    (stanza,) = wrap(file_key, [me.public_key], rng)
    ephemeral = bytearray(stanza.ephemeral)
    ephemeral[0] ^= 0x01
    files["tampered_ephemeral"] = _vector(
        "recipient_not_authorized",
        "this identity's stanza with one bit of the ephemeral key flipped",
        me,
        [Stanza(bytes(ephemeral), stanza.body)],
        None,
    )

    rng, me, file_key = scenario("all_zero_ephemeral")
    files["all_zero_ephemeral"] = _vector(
        "key_unwrap_failed",
        "ephemeral key 0^32 (low order: the shared secret is all zero for every recipient)",
        me,
        [Stanza(bytes(32), rng(48))],
        None,
    )

    rng, me, file_key = scenario("all_zero_ephemeral_among_valid")
    stanzas = [*wrap(file_key, [me.public_key], rng), Stanza(bytes(32), rng(48))]
    files["all_zero_ephemeral_among_valid"] = _vector(
        "key_unwrap_failed",
        "a valid stanza for this identity and a low-order one: the list is malformed",
        me,
        stanzas,
        None,
    )

    rng, me, file_key = scenario("low_order_ephemeral")
    # A point of order 8 (on libsodium's list of low-order points): X25519 with any
    # clamped scalar gives the all-zero shared secret.
    low_order = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
    files["low_order_ephemeral"] = _vector(
        "key_unwrap_failed",
        "ephemeral key of order 8: the shared secret is all zero",
        me,
        [Stanza(low_order, rng(48))],
        None,
    )
    return files


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
