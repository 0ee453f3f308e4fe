"""The vectors of the signed objects (tests/vectors/{identity,capsule,mailbox,revocation,
introduction}).

Each file says what a reader must do with its input (``expect:``: success or the exact
error code); the generators must still reproduce every file byte for byte.
"""

from __future__ import annotations

import importlib.util
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.stream import FileKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.errors import IpfsShareError, NotFoundError
from ipfs_share.formats import capsule, identity_doc, introduction, mailbox, revocation
from ipfs_share.formats.ipns import ipns_name
from ipfs_share.formats.signed import block_from_bytes, did_key, run_walk

VECTORS = Path(__file__).parent / "vectors"
sys.path.insert(0, str(VECTORS))

import vectorfile  # noqa: E402

FOLDERS = ("identity", "capsule", "mailbox", "revocation", "introduction")


def _vectors(folder: str) -> list[vectorfile.Vector]:
    return vectorfile.load_dir(VECTORS / folder)


def _body(v: vectorfile.Vector) -> bytes:
    if v.body is not None:
        return v.body
    return zlib.decompress(v.hex("body_zlib"))


def _store(v: vectorfile.Vector) -> Callable[[str], bytes]:
    """The vector's block store: block_N under its own CID or under block_N_cid."""
    blocks: dict[str, bytes] = {}
    i = 0
    while f"block_{i}" in v.fields:
        data = v.hex(f"block_{i}")
        blocks[v.fields.get(f"block_{i}_cid", block_from_bytes(data).cid)] = data
        i += 1

    def get(cid: str) -> bytes:
        if cid not in blocks:
            raise NotFoundError(f"expected block {cid} in the vector, found none")
        return blocks[cid]

    return get


# --- readers: each runs a vector and checks what success pins -------------------------


def _identity(v: vectorfile.Vector) -> None:
    doc = identity_doc.decode_identity_document(_body(v), did=v.fields.get("did"))
    assert doc.cid == v.fields["cid"]
    assert bytes(doc.enc) == v.hex("enc")
    key = SigningKey.from_seed(v.hex("identity_seed"))
    assert doc.did == did_key(key.public_key)
    assert doc.revocations == ipns_name(identity_doc.revocation_key(key).public_key)


def _capsule(v: vectorfile.Vector) -> None:
    f = v.fields
    if f["kind"] == "capability":
        token = _body(v) if v.body is not None or "body_zlib" in f else None
        if "capsule" not in f:
            assert token is not None
            capsule.decode_capability(token)
            return
        opened = capsule.decode_capsule(v.hex("capsule"))
        capsule.require_capability(opened, token, audience=f["audience"], now=int(f["now"]))
        return
    opened = capsule.decode_capsule(_body(v), issuer=f.get("issuer"))
    if "now" in f:
        capsule.check_expiry(opened, int(f["now"]))
    if "identity" in f:
        file_key = capsule.find_and_unwrap(opened, EncryptionKey(v.hex("identity")))
        capsule.check_commitment(opened, file_key)
        if "file_key" in f:
            assert file_key == FileKey(v.hex("file_key"))
    if "cid" in f:
        assert opened.cid == f["cid"]


def _mailbox(v: vectorfile.Vector) -> None:
    f = v.fields
    if f["kind"] == "entry":
        entry = mailbox.decode_entry(_body(v), sender=f.get("sender"))
        assert entry.cid == f["cid"]
        if "acks" in f:
            assert len(entry.acks) == int(f["acks"]) and entry.kind == "ack"
    elif f["kind"] == "chain":
        known = None
        if "known_seq" in f:
            known = mailbox.HighWater(int(f["known_seq"]), f["known_cid"])
        head_seq = int(f["head_seq"]) if "head_seq" in f else None
        walk = mailbox.verify_chain(f["head"], sender=f["sender"], known=known, head_seq=head_seq)
        entries = run_walk(walk, _store(v))
        assert ",".join(str(e.seq) for e in entries) == f["new_seqs"]
    else:
        sender, recipient = (
            SigningKey.from_seed(v.hex(f"{who}_seed")) for who in ("sender", "recipient")
        )
        s_enc, r_enc = (EncryptionKey(v.hex(f"{who}_x25519")) for who in ("sender", "recipient"))
        s_did, r_did = did_key(sender.public_key), did_key(recipient.public_key)
        forward = {"sender": s_did, "recipient": r_did}
        assert mailbox.mailbox_name(s_enc, r_enc.public_key, **forward) == f["name"]
        assert mailbox.mailbox_name(r_enc, s_enc.public_key, **forward) == f["name"]
        reverse = {"sender": r_did, "recipient": s_did}
        assert mailbox.mailbox_name(r_enc, s_enc.public_key, **reverse) == f["reverse_name"]


def _revocation(v: vectorfile.Vector) -> None:
    f = v.fields
    if f["kind"] == "head":
        head = revocation.decode_head(_body(v), issuer=f.get("issuer"))
        assert (head.cid, head.seq, head.count) == (f["cid"], int(f["seq"]), int(f["count"]))
    elif f["kind"] == "node":
        revocation.decode_node(_body(v))
    elif f["kind"] == "lookup":
        get = _store(v)
        reads: list[str] = []

        def counted(cid: str) -> bytes:
            reads.append(cid)
            return get(cid)

        head = revocation.decode_head(counted(f["head"]), issuer=f["issuer"])
        revoked = run_walk(revocation.is_revoked(head, f["capsule"]), counted)
        assert (str(revoked).lower(), len(reads)) == (f["revoked"], int(f["reads"]))
    else:
        get = _store(v)
        head = revocation.decode_head(get(f["head"]))
        known = revocation.decode_head(get(f["known"]))
        run_walk(revocation.verify_history(head, known), get)


def _introduction(v: vectorfile.Vector) -> None:
    f = v.fields
    if f["kind"] == "topic":
        assert introduction.introduction_topic(f["did"]) == f["topic"]
        return
    if f["kind"] == "link":
        link = introduction.parse_link(f["link"])
        assert (link.capsule, link.sender) == (f["capsule"], f["sender"])
        assert introduction.format_link(link.capsule, link.sender) == f["link"]
        return
    me = did_key(SigningKey.from_seed(v.hex("recipient_seed")).public_key)
    key = EncryptionKey(v.hex("recipient_x25519"))
    got = introduction.open_introduction(_body(v), me, key, now=int(f["now"]))
    assert (got.sender, got.sent, got.cid) == (f["sender"], int(f["sent"]), f["cid"])


READERS: dict[str, Callable[[vectorfile.Vector], None]] = {
    "identity": _identity,
    "capsule": _capsule,
    "mailbox": _mailbox,
    "revocation": _revocation,
    "introduction": _introduction,
}


@pytest.mark.parametrize(
    ("folder", "vector"),
    [(folder, v) for folder in FOLDERS for v in _vectors(folder)],
    ids=lambda x: x if isinstance(x, str) else x.name,
)
def test_vector(folder: str, vector: vectorfile.Vector) -> None:
    try:
        READERS[folder](vector)
    except IpfsShareError as exc:
        assert exc.code == vector.expect, f"{vector.name}: {exc.message}"
    else:
        assert vector.expect == "success", f"{vector.name}: expected {vector.expect}"


def _generator(folder: str) -> ModuleType:
    path = VECTORS / folder / "generate.py"
    spec = importlib.util.spec_from_file_location(f"vectors_{folder}_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("folder", FOLDERS)
def test_generator_reproduces_files(folder: str) -> None:
    files = _generator(folder).build()
    on_disk = {p.name for p in (VECTORS / folder).iterdir() if p.is_file() and not p.suffix}
    assert set(files) == on_disk
    for name, text in files.items():
        assert (VECTORS / folder / name).read_text(encoding="utf-8") == text, name


def test_every_outcome_is_covered() -> None:
    expected = {
        "identity": {"success", "signature_invalid", "format_invalid"},
        "capsule": {
            "success",
            "signature_invalid",
            "format_invalid",
            "share_expired",
            "recipient_not_authorized",
            "key_unwrap_failed",
            "capability_required",
            "capability_invalid",
        },
        "mailbox": {
            "success",
            "signature_invalid",
            "format_invalid",
            "chain_invalid",
            "feed_rollback",
            "feed_fork",
            "integrity_error",
        },
        "revocation": {
            "success",
            "signature_invalid",
            "format_invalid",
            "chain_invalid",
            "feed_rollback",
            "feed_fork",
        },
        "introduction": {
            "success",
            "signature_invalid",
            "format_invalid",
            "decryption_failed",
            "introduction_rejected",
        },
    }
    for folder, outcomes in expected.items():
        assert {v.expect for v in _vectors(folder)} == outcomes
