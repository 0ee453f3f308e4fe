"""Generate the introduction vectors (docs/spec/introductions.md).

Run from the repository root: ``.venv/bin/python tests/vectors/introduction/generate.py``.

``kind: sealed`` -- the body is one message from an introduction topic. The reader is
the recipient: ``recipient_seed`` (its Ed25519 seed, whose did:key is the recipient)
and ``recipient_x25519`` (its X25519 secret); ``now`` is the reader's clock. A success
pins ``sender`` (the did it is from), ``sent`` and ``cid`` (the signed object's CID, the
replay key).

``kind: topic`` -- ``did`` must give ``topic``.

``kind: link`` -- ``link`` must parse to ``capsule`` and ``sender`` (a success), or fail.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import nacl.bindings  # noqa: E402
import vectorfile  # noqa: E402

from ipfs_share.crypto.hkdf import hkdf  # noqa: E402
from ipfs_share.crypto.labels import (  # noqa: E402
    LABEL_INTRODUCTION,
    LABEL_INTRODUCTION_SEAL,
    LABEL_MAILBOX_ENTRY,
)
from ipfs_share.crypto.random import DeterministicRng  # noqa: E402
from ipfs_share.crypto.seal import seal, unseal  # noqa: E402
from ipfs_share.crypto.signing import SigningKey  # noqa: E402
from ipfs_share.crypto.x25519 import EncryptionKey  # noqa: E402
from ipfs_share.formats import dagcbor  # noqa: E402
from ipfs_share.formats.cid import RAW, cid_for  # noqa: E402
from ipfs_share.formats.introduction import (  # noqa: E402
    introduction_topic,
    make_introduction,
)
from ipfs_share.formats.signed import block_from_bytes, block_of, did_key  # noqa: E402

NOW = 1_800_000_000


def _rng(scenario: str) -> DeterministicRng:
    return DeterministicRng(b"ipfs-share/vectors/introduction/" + scenario.encode())


class _People:
    """A sender and a recipient (and someone else), from one scenario's rng."""

    def __init__(self, scenario: str) -> None:
        self.rng = rng = _rng(scenario)
        self.sender = SigningKey.generate(rng)
        self.recipient = SigningKey.generate(rng)
        self.recipient_enc = EncryptionKey.generate(rng)
        self.other = SigningKey.generate(rng)
        self.other_enc = EncryptionKey.generate(rng)

    @property
    def to(self) -> str:
        return did_key(self.recipient.public_key)

    def reader(self) -> dict[str, Any]:
        return {
            "recipient_seed": self.recipient.seed_bytes(),
            "recipient_x25519": self.recipient_enc.secret_bytes(),
            "now": NOW,
        }

    def intro(self, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "v": 1,
            "from": did_key(self.sender.public_key),
            "to": self.to,
            "sent": NOW - 10,
            "nonce": self.rng(16),
        }
        body.update(fields)
        return {k: v for k, v in body.items() if v is not None}

    def signed(self, body: dict[str, Any], label: bytes = LABEL_INTRODUCTION) -> bytes:
        body = {k: v for k, v in body.items() if k != "sig"}
        body["sig"] = self.sender.sign(label + dagcbor.encode(body))
        return dagcbor.encode(body)

    def sealed(self, inner: bytes, enc: EncryptionKey | None = None) -> bytes:
        key = (enc or self.recipient_enc).public_key
        return seal(inner, key, label=LABEL_INTRODUCTION_SEAL, rng=self.rng)


def build() -> dict[str, str]:
    """Scenario name -> file text."""
    files: dict[str, str] = {}

    def sealed(
        name: str, expect: str, comment: str, people: _People, body: bytes, **pin: Any
    ) -> None:
        fields: dict[str, Any] = {"expect": expect, "kind": "sealed", "comment": comment}
        fields.update(people.reader())
        fields.update(pin)
        files[name] = vectorfile.dump(fields, body=body)

    p = _People("success")
    message = make_introduction(
        p.sender, p.to, p.recipient_enc.public_key, sent=NOW - 10, rng=p.rng
    )
    inner_cid = _inner_cid(p, message)
    sealed(
        "success",
        "success",
        "an introduction made 10 s before the reader's clock",
        p,
        message,
        sender=did_key(p.sender.public_key),
        sent=NOW - 10,
        cid=inner_cid,
    )

    for name, sent, expect, comment in (
        ("window_edge_past", NOW - 300, "success", "made exactly 300 s before now: inside"),
        ("window_edge_future", NOW + 300, "success", "made exactly 300 s after now: inside"),
        ("stale", NOW - 301, "introduction_rejected", "made 301 s before now: a replay later"),
        ("future", NOW + 301, "introduction_rejected", "made 301 s after now"),
    ):
        p = _People(name)
        body = p.sealed(p.signed(p.intro(sent=sent)))
        pin = {"sender": did_key(p.sender.public_key), "sent": sent} if expect == "success" else {}
        if pin:
            pin["cid"] = _inner_cid(p, body)
        sealed(name, expect, comment, p, body, **pin)

    p = _People("other_recipient")
    body = p.sealed(p.signed(p.intro(to=did_key(p.other.public_key))))
    sealed(
        "other_recipient",
        "introduction_rejected",
        "sealed to the reader's key but addressed (and signed) to another did",
        p,
        body,
    )

    p = _People("wrong_key")
    body = p.sealed(p.signed(p.intro()), enc=p.other_enc)
    sealed("wrong_key", "decryption_failed", "sealed to another x25519 key", p, body)

    p = _People("tampered")
    body = bytearray(p.sealed(p.signed(p.intro())))
    body[40] ^= 0x01
    sealed("tampered", "decryption_failed", "one bit of the ciphertext flipped", p, bytes(body))

    p = _People("low_order_ephemeral")
    key = hkdf(
        bytes(32),
        salt=bytes(32) + bytes(p.recipient_enc.public_key),
        info=LABEL_INTRODUCTION_SEAL,
        length=32,
    )
    box = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
        p.signed(p.intro()), None, bytes(12), key
    )
    sealed(
        "low_order_ephemeral",
        "decryption_failed",
        "an all-zero ephemeral key, the body sealed under the all-zero shared secret: "
        "it would open, but a low-order point is refused",
        p,
        bytes(32) + box,
    )

    p = _People("too_short")
    sealed(
        "too_short",
        "format_invalid",
        "48 bytes: an ephemeral key and a tag, nothing sealed",
        p,
        p.rng(48),
    )

    p = _People("oversize")
    sealed(
        "oversize",
        "format_invalid",
        "561 bytes: over the 560-byte cap, refused unopened",
        p,
        p.rng(561),
    )

    p = _People("bad_signature")
    inner = bytearray(p.signed(p.intro()))
    inner[inner.index(b"\x63sig\x58\x40") + 6] ^= 0x01
    sealed(
        "bad_signature",
        "signature_invalid",
        "one bit of the inner signature flipped",
        p,
        p.sealed(bytes(inner)),
    )

    p = _People("wrong_label")
    sealed(
        "wrong_label",
        "signature_invalid",
        "signed with the mailbox entry label instead of the introduction label",
        p,
        p.sealed(p.signed(p.intro(), label=LABEL_MAILBOX_ENTRY)),
    )

    p = _People("extra_field")
    sealed(
        "extra_field",
        "format_invalid",
        "an extra key (signed): the map is closed",
        p,
        p.sealed(p.signed(p.intro(note="hi"))),
    )

    p = _People("missing_nonce")
    sealed(
        "missing_nonce",
        "format_invalid",
        "no nonce",
        p,
        p.sealed(p.signed(p.intro(nonce=None))),
    )

    p = _People("short_nonce")
    sealed(
        "short_nonce",
        "format_invalid",
        "a 15-byte nonce",
        p,
        p.sealed(p.signed(p.intro(nonce=p.rng(15)))),
    )

    p = _People("unknown_version")
    sealed("unknown_version", "format_invalid", "v 2", p, p.sealed(p.signed(p.intro(v=2))))

    p = _People("topic")
    files["topic"] = vectorfile.dump(
        {
            "expect": "success",
            "kind": "topic",
            "comment": "the introduction topic of a did: anyone can derive it",
            "did": p.to,
            "topic": introduction_topic(p.to),
        }
    )

    p = _People("link")
    capsule = block_of({"capsule": p.rng(16)}).cid
    sender = did_key(p.sender.public_key)
    for name, expect, comment, link in (
        (
            "link_success",
            "success",
            "a capsule ID and its sender's did",
            f"ipfs-share:{capsule}?from={sender}",
        ),
        ("link_no_scheme", "format_invalid", "no scheme", f"{capsule}?from={sender}"),
        ("link_no_sender", "format_invalid", "no from= parameter", f"ipfs-share:{capsule}"),
        (
            "link_extra_parameter",
            "format_invalid",
            "a second parameter",
            f"ipfs-share:{capsule}?from={sender}&x=1",
        ),
        (
            "link_raw_cid",
            "format_invalid",
            "a raw CID is no capsule",
            f"ipfs-share:{cid_for(RAW, b'x')}?from={sender}",
        ),
        (
            "link_bad_did",
            "format_invalid",
            "a did that is not a canonical ed25519 did:key",
            f"ipfs-share:{capsule}?from=did:key:z6Mk",
        ),
    ):
        fields: dict[str, Any] = {
            "expect": expect,
            "kind": "link",
            "comment": comment,
            "link": link,
        }
        if expect == "success":
            fields.update(capsule=capsule, sender=sender)
        files[name] = vectorfile.dump(fields)
    return files


def _inner_cid(p: _People, message: bytes) -> str:
    return block_from_bytes(unseal(message, p.recipient_enc, label=LABEL_INTRODUCTION_SEAL)).cid


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
