"""The keychain vectors (tests/vectors/keychain, docs/spec/keychain.md section 11).

A replay vector's blocks go into a fresh replica, built from the bytes alone; the reason
the replica gives the named op must be the file's ``expect``, and the state it pins must
be what the replica computes, in both ingestion orders where a second one is given.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ipfs_share.crypto.keychain import KeychainKey, open_message, sealed_fingerprint
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.errors import IpfsShareError
from ipfs_share.formats.keychain import (
    Create,
    Grant,
    Release,
    decode_op,
    fingerprint_text,
    open_delivery,
    parse_fingerprint,
)
from ipfs_share.formats.keychain_file import decode_keychain_file, open_file_key

VECTORS = Path(__file__).parent / "vectors"
FOLDER = VECTORS / "keychain"
sys.path.insert(0, str(VECTORS))
sys.path.insert(0, str(Path(__file__).parent))

import vectorfile  # noqa: E402


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vectors_keychain_generate", FOLDER / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
VECTOR_FILES = vectorfile.load_dir(FOLDER)


def _blocks(v: vectorfile.Vector) -> list[bytes]:
    out = []
    while f"block_{len(out)}" in v.fields:
        out.append(v.hex(f"block_{len(out)}"))
    return out


def _replay(v: vectorfile.Vector) -> str:
    f = v.fields
    blocks = _blocks(v)
    replica = GENERATOR.replay(blocks, f["keychain"])
    state = replica.state
    for key, value in GENERATOR.pinned(state).items():
        assert value == f[key], f"{v.name}: {key}"
    if "order_b" in f:
        other = GENERATOR.replay(blocks, f["keychain"], [int(i) for i in f["order_b"].split(",")])
        assert GENERATOR.pinned(other.state) == GENERATOR.pinned(state)
    if "holders" in f:
        holders = state.holders(parse_fingerprint(f["key"]))
        assert ",".join(h.holder for h in holders) == f["holders"]
    if "most_recent" in f:
        recent = state.most_recent_key(f["member"], int(f["now"]))
        assert recent is not None and fingerprint_text(recent.fp) == f["most_recent"]
    if "perms" in f:
        perms = state.members[f["member"]].perms.to_json()
        assert ",".join(f"{k}={str(x).lower()}" for k, x in perms.items()) == f["perms"]
    return GENERATOR.outcome(replica, f["op"])


def _sealed(v: vectorfile.Vector) -> str:
    body = v.body
    assert body is not None
    sealed_fingerprint(body)
    plain = open_message(KeychainKey(v.hex("key")), body, v.hex("ad"))
    assert plain == v.hex("plaintext")
    return "success"


def _delivery(v: vectorfile.Vector) -> str:
    assert v.body is not None
    op = decode_op(v.body)
    assert isinstance(op.body, Create | Grant | Release)
    fps = [parse_fingerprint(t) for t in v.fields["fingerprints"].split(",")]
    _, keys = open_delivery(op.body.delivery, v.fields["did"], EncryptionKey(v.hex("x25519")), fps)
    assert b"".join(k.secret_bytes() for k in keys) == v.hex("keys")
    return "success"


def _file(v: vectorfile.Vector) -> str:
    assert v.body is not None
    opened = decode_keychain_file(v.body)
    file_key = open_file_key(opened, KeychainKey(v.hex("key")))
    assert file_key.secret_bytes() == v.hex("file_key")
    return "success"


READERS = {"replay": _replay, "sealed": _sealed, "delivery": _delivery, "file": _file}


@pytest.mark.parametrize("vector", VECTOR_FILES, ids=lambda v: v.name)
def test_vector(vector: vectorfile.Vector) -> None:
    try:
        got = READERS[vector.fields["kind"]](vector)
    except IpfsShareError as exc:
        got = exc.code
    assert got == vector.expect, vector.name


def test_generator_reproduces_files() -> None:
    files = GENERATOR.build()
    on_disk = {p.name for p in FOLDER.iterdir() if p.is_file() and not p.suffix}
    assert set(files) == on_disk
    for name, text in files.items():
        assert (FOLDER / name).read_text(encoding="utf-8") == text, name


def test_the_named_scenarios_are_there() -> None:
    names = {v.name for v in VECTOR_FILES}
    assert {
        "valid_share",
        "forged_author",
        "permission_not_held",
        "concurrent_rotation",
        "ban_race",
        "cancel",
    } <= names


def test_a_keychain_file_cannot_be_pointed_at_other_content() -> None:
    from ipfs_share.crypto.signing import SigningKey
    from ipfs_share.crypto.stream import FileKey
    from ipfs_share.errors import KeyUnwrapFailedError
    from ipfs_share.formats import dagcbor
    from ipfs_share.formats.dagcbor import Link
    from ipfs_share.formats.keychain_file import KEYCHAIN_FILE, make_keychain_file
    from ipfs_share.formats.signed import sign_object

    owner, key = SigningKey.from_seed(bytes(32)), KeychainKey(bytes(32))
    kc = "bafyreifqwkmiw256ojf2zws6tzjeonw6bpd5vza4i22ccpcq4hjv2ts7cm"
    made = make_keychain_file(
        owner,
        content="bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq",
        keychain=kc,
        key=key,
        file_key=FileKey(b"\x02" * 32),
        created=1,
    )
    assert open_file_key(decode_keychain_file(made.data), key) == FileKey(b"\x02" * 32)
    fields = {k: v for k, v in dagcbor.decode(made.data).items() if k not in ("v", "sig")}
    fields["content"] = Link("bafkreid3dn3d52hwf24i4r2cu5qpsewqwgn42wfsxfejtf4exlgblj7u24")
    moved = decode_keychain_file(sign_object(KEYCHAIN_FILE, fields, owner).data)
    with pytest.raises(KeyUnwrapFailedError):
        open_file_key(moved, key)
