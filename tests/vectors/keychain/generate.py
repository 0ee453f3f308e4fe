"""Generate the keychain vectors (docs/spec/keychain.md section 11).

Run from the repository root: ``.venv/bin/python tests/vectors/keychain/generate.py``.

``kind: replay`` -- ``block_0``, ``block_1``, ... are ops given to a fresh replica in that
order; ``op`` is the op the scenario is about; ``expect`` is ``success`` or the reason the
replica gives it. ``members``, ``banned``, ``keys`` and ``invalid`` pin the state;
``holders``/``key``, ``most_recent``/``member``/``now`` and ``perms``/``member`` pin more;
``order_b`` is another ingestion order (block numbers) that must give the same state.

``kind: sealed`` -- the body is a sealed message; ``key`` opens it with ``ad``.

``kind: delivery`` -- the body is an op with a delivery; ``did`` and ``x25519`` are a
recipient; ``fingerprints`` are the keys the op names; success pins ``keys``.

Each scenario is written by people with their own replicas (tests/keychain_world.py), with
every random byte from ``DeterministicRng(b"ipfs-share/vectors/keychain/<scenario>")``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

import vectorfile  # noqa: E402
from keychain_world import T0, World  # noqa: E402

from ipfs_share.crypto.keychain import (  # noqa: E402
    KeychainKey,
    key_fingerprint,
    seal_message,
)
from ipfs_share.crypto.labels import LABEL_KEYCHAIN_FILE, LABEL_KEYCHAIN_OP  # noqa: E402
from ipfs_share.crypto.random import DeterministicRng  # noqa: E402
from ipfs_share.crypto.signing import SigningKey  # noqa: E402
from ipfs_share.crypto.stream import FileKey  # noqa: E402
from ipfs_share.formats import dagcbor  # noqa: E402
from ipfs_share.formats.dagcbor import Link  # noqa: E402
from ipfs_share.formats.keychain import (  # noqa: E402
    SCHEMAS,
    Op,
    Permissions,
    Share,
    fingerprint_text,
    make_delivery,
)
from ipfs_share.formats.keychain_file import KEYCHAIN_FILE, make_keychain_file  # noqa: E402
from ipfs_share.formats.keychain_replay import Replica, State  # noqa: E402
from ipfs_share.formats.signed import sign_object  # noqa: E402

SHARING = Permissions(sharing=True)


def _world(scenario: str) -> World:
    return World(rng=DeterministicRng(b"ipfs-share/vectors/keychain/" + scenario.encode()))


def replay(blocks: Sequence[bytes], keychain: str, order: Sequence[int] | None = None) -> Replica:
    """What a reader does with a replay vector (the test uses this same function)."""
    replica = Replica(keychain)
    for i in order if order is not None else range(len(blocks)):
        replica.add(blocks[i])
    replica.update()
    return replica


def outcome(replica: Replica, cid: str) -> str:
    rejected = replica.state.invalid.get(cid) or replica.rejected.get(cid)
    return "success" if rejected is None else rejected.reason


def pinned(state: State) -> dict[str, str]:
    """The state fields every replay vector pins."""
    return {
        "members": ",".join(m.did for m in state.current_members()),
        "banned": ",".join(sorted(d for d, m in state.members.items() if m.status == "banned")),
        "keys": ",".join(fingerprint_text(k.fp) for k in state.keys_in_order()),
        "invalid": ",".join(f"{c}:{r.reason}" for c, r in sorted(state.invalid.items())),
    }


def _replay_vector(
    w: World,
    op: Op | str,
    comment: str,
    *,
    ops: Sequence[Op | bytes] | None = None,
    order_b: Sequence[int] | None = None,
    extra: Callable[[Replica], dict[str, Any]] | None = None,
) -> str:
    items = list(ops) if ops is not None else list(w.ops)
    blocks = [i if isinstance(i, bytes) else i.data for i in items]
    cid = op if isinstance(op, str) else op.cid
    replica = replay(blocks, w.keychain)
    fields: dict[str, Any] = {
        "expect": outcome(replica, cid),
        "kind": "replay",
        "comment": comment,
        "keychain": w.keychain,
        "op": cid,
        **pinned(replica.state),
    }
    if extra is not None:
        fields.update(extra(replica))
    if order_b is not None:
        assert pinned(replay(blocks, w.keychain, order_b).state) == pinned(replica.state)
        fields["order_b"] = ",".join(str(i) for i in order_b)
    for i, block in enumerate(blocks):
        fields[f"block_{i}"] = block
    return vectorfile.dump(fields)


def _resign(op: Op, changes: dict[str, Any], key: Any) -> bytes:
    """Sign a modified copy of ``op`` (for chains the writer refuses to make)."""
    fields = {k: v for k, v in dagcbor.decode(op.data).items() if k not in ("v", "sig")}
    fields.update(changes)
    return sign_object(SCHEMAS[op.kind], fields, key).data


def _forge(op: Op, key: Any) -> bytes:
    """Sign ``op``'s fields, as they are, with another key (the encoder refuses to)."""
    body = {k: v for k, v in dagcbor.decode(op.data).items() if k != "sig"}
    body["sig"] = key.sign(LABEL_KEYCHAIN_OP + dagcbor.encode(body))
    return dagcbor.encode(body)


def build() -> dict[str, str]:
    """Scenario name -> file text."""
    files: dict[str, str] = {}
    _replays(files)
    _sealed(files)
    _deliveries(files)
    _files(files)
    return files


def _three(scenario: str) -> World:
    w = _world(scenario)
    w.create("owner")
    w.invite("owner", "bob", SHARING)
    w.invite("bob", "carol")
    return w


def _holders(fp: bytes) -> Callable[[Replica], dict[str, Any]]:
    def extra(r: Replica) -> dict[str, Any]:
        return {
            "key": fingerprint_text(fp),
            "holders": ",".join(h.holder for h in r.state.holders(fp)),
        }

    return extra


def _replays(files: dict[str, str]) -> None:
    w = _three("valid_share")
    last = w.ops[-1]  # bob's release to carol
    assert w.create_op is not None
    first = w.create_op.body.key  # type: ignore[union-attr]
    files["valid_share"] = _replay_vector(
        w,
        last,
        "owner shares to bob with allow_sharing; bob re-shares to carol; carol holds the key",
        extra=_holders(first),
    )

    w = _three("forged_author")
    offer = w.share("bob", "dave", apply=False)
    forged = _forge(offer, w.person("carol").signing)  # names bob, signed by carol
    files["forged_author"] = _replay_vector(
        w,
        _cid(forged),
        "a share naming bob as author, signed with carol's key: refused before replay",
        ops=[*w.ops[:-1], forged],
    )

    w = _three("bad_signature")
    offer = w.share("bob", "dave", apply=False)
    tampered = bytearray(offer.data)
    tampered[tampered.index(b"\x63sig\x58\x40") + 6] ^= 1
    files["bad_signature"] = _replay_vector(
        w, _cid(bytes(tampered)), "one bit of sig flipped", ops=[*w.ops[:-1], bytes(tampered)]
    )

    w = _three("permission_not_held")
    forced = w.share("carol", "dave")
    files["permission_not_held"] = _replay_vector(
        w, forced, "carol, without allow_sharing, shares to dave: ignored by every replica"
    )

    w = _three("permission_granted_concurrently")
    w.sync_all()
    w.set_perms("owner", "carol", sharing=True)
    forced = w.share("carol", "dave")
    w.sync_all()
    files["permission_granted_concurrently"] = _replay_vector(
        w, forced, "carol shares before she saw owner's grant of allow_sharing: not in its past"
    )

    w = _three("key_introduced_by_share")
    stray = key_fingerprint(KeychainKey(bytes(range(32))))
    slipped = w.share("bob", "dave", keys=[stray])
    files["key_introduced_by_share"] = _replay_vector(
        w, slipped, "bob offers a key fingerprint no add_key introduced (needs allow_rotation)"
    )

    w = _three("rotation_not_allowed")
    rotation = w.rotate("bob")
    files["rotation_not_allowed"] = _replay_vector(
        w, rotation, "bob has allow_sharing only and adds a key"
    )

    w = _world("concurrent_rotation")
    w.create("owner")
    w.invite("owner", "bob", Permissions(sharing=True, rotation=True))
    w.sync_all()
    w.rotate("owner", to=["bob"])
    second = w.rotate("bob", to=["owner"])
    w.sync_all()
    n = len(w.ops)
    files["concurrent_rotation"] = _replay_vector(
        w,
        second,
        "owner and bob rotate concurrently: both keys kept; bob's is replayed last (owner is "
        "more senior), so it is the most recent key of both",
        order_b=[0, 1, 2, 3, n - 1, n - 2],
        extra=lambda r: {
            "member": w.person("owner").did,
            "now": w.clock,
            "most_recent": fingerprint_text(
                r.state.most_recent_key(w.person("owner").did, w.clock).fp  # type: ignore[union-attr]
            ),
        },
    )

    w = _world("ban_race")
    w.create("owner")
    w.invite("owner", "bob", SHARING)
    w.sync("owner")
    w.ban("owner", "bob")
    offer = w.share("bob", "dave")
    w.sync("dave", "bob")
    w.accept("dave", offer)
    w.sync("bob", "dave")
    w.release("bob", offer)
    w.sync_all()
    n = len(w.ops)
    files["ban_race"] = _replay_vector(
        w,
        offer,
        "owner bans bob while bob shares to dave (who accepts, and bob releases): bob's share, "
        "and everything resting on it, is void on every replica",
        order_b=[0, 1, 2, 3, *range(5, n), 4],
    )

    w = _three("cancel")
    offer = w.share("bob", "dave")
    w.cancel("bob", offer)
    w.sync("dave", "bob")
    accept = w.accept("dave", offer)
    w.sync("bob", "dave")
    files["cancel"] = _replay_vector(
        w,
        accept,
        "bob cancels before dave accepts: the accept is ignored and dave holds nothing",
        extra=_holders(w.create_op.body.key),  # type: ignore[union-attr]
    )

    w = _three("release_after_cancel")
    offer = w.share("bob", "dave")
    w.sync("dave", "bob")
    w.accept("dave", offer)
    w.cancel("bob", offer)
    w.sync("bob", "dave")
    late = w.release("bob", offer)
    files["release_after_cancel"] = _replay_vector(
        w, late, "a release written after the sharer's own cancel is ignored"
    )

    w = _three("release_without_accept")
    offer = w.share("bob", "dave")
    early = w.release("bob", offer)
    files["release_without_accept"] = _replay_vector(
        w, early, "a release before the recipient accepted is ignored"
    )

    w = _world("deny_wins")
    w.create("owner")
    w.invite("owner", "mgr", Permissions(management=True))
    w.invite("owner", "bob")
    w.sync_all()
    w.set_perms("owner", "bob", sharing=False)
    grant = w.set_perms("mgr", "bob", sharing=True, rotation=True)
    w.sync_all()
    bob = w.person("bob").did
    files["deny_wins"] = _replay_vector(
        w,
        grant,
        "owner denies bob allow_sharing while mgr grants it (and allow_rotation): deny wins "
        "on that flag only",
        extra=lambda r: {"member": bob, "perms": _perms(r.state.members[bob].perms)},
    )

    w = _world("creator_protected")
    w.create("owner")
    w.invite("owner", "bob", Permissions.all())
    ban = w.ban("bob", "owner")
    files["creator_protected"] = _replay_vector(
        w, ban, "bob holds every permission and bans the creator"
    )

    w = _three("fork")
    bob = w.person("bob")
    assert bob.writer is not None
    before = bob.writer.last
    one = w.share("bob", "dave")
    bob.writer.last = before
    w.share("bob", "erin", apply=False)
    files["fork"] = _replay_vector(w, one, "bob signs two ops at one seq: both are void")

    w = _three("chain_gap")
    honest = w.share("bob", "dave", apply=False)
    gap = _resign(honest, {"seq": honest.seq + 1}, w.person("bob").signing)
    files["chain_gap"] = _replay_vector(
        w, _cid(gap), "seq jumps by two over prev: refused", ops=[*w.ops[:-1], gap]
    )

    w = _three("wrong_keychain")
    other = _world("wrong_keychain_other")
    other.create("owner")
    stray_op = other.share("owner", "bob")
    files["wrong_keychain"] = _replay_vector(
        w, stray_op, "an op of another keychain: refused", ops=[*w.ops, stray_op]
    )


def _perms(p: Permissions) -> str:
    return ",".join(f"{k}={str(v).lower()}" for k, v in p.to_json().items())


def _cid(data: bytes) -> str:
    from ipfs_share.formats.signed import block_from_bytes

    return block_from_bytes(data).cid


def _sealed(files: dict[str, str]) -> None:
    rng = DeterministicRng(b"ipfs-share/vectors/keychain/sealed")
    key = KeychainKey.generate(rng)
    fp = key_fingerprint(key)
    sealed = seal_message(key, fp, b"hello, keychain", b"doc-1", rng)

    def vector(name: str, expect: str, comment: str, body: bytes, **extra: Any) -> None:
        fields = {"expect": expect, "kind": "sealed", "comment": comment, "key": key.secret_bytes()}
        files[name] = vectorfile.dump({**fields, **extra}, body=body)

    vector("sealed_success", "success", "a sealed message", sealed, ad=b"doc-1",
           plaintext=b"hello, keychain")  # fmt: skip
    vector("sealed_wrong_ad", "decryption_failed", "opened with another ad", sealed, ad=b"doc-2")
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    vector("sealed_tampered", "decryption_failed", "the tag changed", bytes(flipped), ad=b"doc-1")
    vector(
        "sealed_bad_version",
        "format_invalid",
        "header version 2",
        b"\x02" + sealed[1:],
        ad=b"doc-1",
    )


def _deliveries(files: dict[str, str]) -> None:
    w = _three("delivery")
    release = w.ops[-1]
    carol = w.person("carol")
    assert w.create_op is not None
    fp = w.create_op.body.key  # type: ignore[union-attr]

    def vector(name: str, expect: str, comment: str, op: Op, who: Any, **extra: Any) -> None:
        fields = {
            "expect": expect,
            "kind": "delivery",
            "comment": comment,
            "did": who.did,
            "x25519": who.enc.secret_bytes(),
            "fingerprints": fingerprint_text(fp),
        }
        files[name] = vectorfile.dump({**fields, **extra}, body=op.data)

    vector(
        "delivery_success",
        "success",
        "bob's release to carol",
        release,
        carol,
        keys=carol.keys[fp].secret_bytes(),
    )
    vector(
        "delivery_not_recipient",
        "recipient_not_authorized",
        "dave is not among the recipients",
        release,
        w.person("dave"),
    )
    offer = w.share("bob", "dave")
    w.sync("dave", "bob")
    w.accept("dave", offer)
    w.sync("bob", "dave")
    bob, dave = w.person("bob"), w.person("dave")
    assert bob.secret is not None
    impostor = KeychainKey(bytes(range(32)))
    body = offer.body
    assert isinstance(body, Share)
    from ipfs_share.formats.keychain import Release

    bad = make_delivery(bob.secret, [impostor], [(dave.did, dave.enc.public_key)], w.rng)
    slipped = w.write("bob", Release(offer.cid, bad))
    vector(
        "delivery_wrong_key",
        "key_unwrap_failed",
        "the release names the offered key's fingerprint but seals another key",
        slipped,
        dave,
    )


def _files(files: dict[str, str]) -> None:
    rng = DeterministicRng(b"ipfs-share/vectors/keychain/file")
    owner, other = SigningKey.generate(rng), SigningKey.generate(rng)
    key, wrong = KeychainKey.generate(rng), KeychainKey.generate(rng)
    file_key = FileKey.generate(rng)
    content = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    elsewhere = "bafkreid3dn3d52hwf24i4r2cu5qpsewqwgn42wfsxfejtf4exlgblj7u24"
    kc = _world("file").create("owner").cid
    made = make_keychain_file(
        owner, content=content, keychain=kc, key=key, file_key=file_key, created=T0, rng=rng
    )

    def vector(name: str, expect: str, comment: str, body: bytes, k: KeychainKey, **x: Any) -> None:
        fields = {"expect": expect, "kind": "file", "comment": comment, "key": k.secret_bytes()}
        files[name] = vectorfile.dump({**fields, **x}, body=body)

    vector("file_success", "success", "a keychain file", made.data, key,
           file_key=file_key.secret_bytes())  # fmt: skip
    vector("file_wrong_key", "key_unwrap_failed", "opened with another key", made.data, wrong)
    # The owner re-points the sealed key at other content: the ad no longer matches.
    fields = {k: v for k, v in dagcbor.decode(made.data).items() if k not in ("v", "sig")}
    fields["content"] = Link(elsewhere)
    moved = sign_object(KEYCHAIN_FILE, fields, owner).data
    vector("file_other_content", "key_unwrap_failed", "the sealed key of another content CID",
           moved, key)  # fmt: skip
    body = {k: v for k, v in dagcbor.decode(made.data).items() if k != "sig"}
    body["sig"] = other.sign(LABEL_KEYCHAIN_FILE + dagcbor.encode(body))
    vector("file_forged_owner", "signature_invalid", "names the owner, signed by another key",
           dagcbor.encode(body), key)  # fmt: skip


def main() -> None:
    for path in HERE.iterdir():
        if path.is_file() and not path.suffix:
            path.unlink()
    files = build()
    for name, text in files.items():
        (HERE / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} vectors to {HERE}")


if __name__ == "__main__":
    main()
