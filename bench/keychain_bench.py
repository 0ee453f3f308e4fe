"""Keychains: replay, incremental update, ban with rotation, encrypt/decrypt (issue 10).

- cold replay: a 10,000-op log (11 members sharing, cancelling, accepting, releasing,
  rotating and changing permissions, with concurrent ops) replayed by a new replica from
  its verified store (``load_op``: the bytes were verified when first fetched), target
  < 1 s. Also reported: a replica built from the blocks alone (every signature
  verified), against the same number of bare Ed25519 verifies in the same run.
- incremental: one new op after the replayed state: blocks read (ops added: 1) and time,
  target < 5% of the cold replay; and one op concurrent with the last 100 (it makes the
  replica go back to a checkpoint): time, for comparison.
- ban with rotation in a 1,000-member keychain: the creator's client writes the ban and
  an add_key delivering the new key to the 999 members left, and its replica applies
  both; target < 2 s. A remaining member's side (apply both, open its stanza) too.
- encrypt / decrypt with the keychain's most recent key (sealed messages, section 7 of
  docs/spec/keychain.md) against the raw AEAD (PyNaCl XChaCha20-Poly1305 with a random
  nonce, output nonce || ciphertext: the least a format must do) at 1 KiB, 64 KiB and
  1 MiB; target >= 0.9x.

The machine this runs on may be shared: absolute times move with its load, ratios less.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from typing import Any

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)

from ipfs_share.crypto.keychain import (
    KeychainKey,
    KeychainSecret,
    key_fingerprint,
    open_with,
    seal_message,
)
from ipfs_share.crypto.random import DeterministicRng
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.formats.keychain import (
    Accept,
    AddKey,
    Ban,
    Body,
    Cancel,
    Create,
    Op,
    Permissions,
    Release,
    SetPermissions,
    Share,
    Writer,
    decode_op,
    load_op,
    make_delivery,
    open_delivery,
)
from ipfs_share.formats.keychain_replay import Replica
from ipfs_share.formats.signed import did_key
from ipfs_share.services.keychains.keyring import Keyring

T0 = 1_800_000_000
LOG_SIZE = 10_000
MEMBERS = 1_000


def _best(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class _Person:
    def __init__(self, rng: DeterministicRng) -> None:
        self.signing = SigningKey.generate(rng)
        self.enc = EncryptionKey.generate(rng)
        self.did = did_key(self.signing.public_key)
        self.writer: Writer | None = None


class LogBuilder:
    """Writes a keychain log with one global view of the heads, except that every so
    often two authors write from the same (stale) heads: concurrent ops."""

    def __init__(self, seed: bytes) -> None:
        self.rng = DeterministicRng(b"ipfs-share/bench/keychain/" + seed)
        self.owner = _Person(self.rng)
        self.secret = KeychainSecret.generate(self.rng)
        self.keys: dict[bytes, KeychainKey] = {}
        first = KeychainKey.generate(self.rng)
        self.keys[key_fingerprint(first)] = first
        self.recent = key_fingerprint(first)
        self.owner.writer = Writer.create(
            self.owner.signing,
            self.owner.enc.public_key,
            name="bench",
            time=T0,
            secret=self.secret,
            first=first,
            rng=self.rng,
        )
        self.ops: list[Op] = [self.owner.writer.created]
        self.heads: list[str] = [self.ops[0].cid]
        self.clock = T0

    def write(self, who: _Person, body: Body, *, stale: bool = False) -> Op:
        if who.writer is None:
            who.writer = Writer(who.signing, self.ops[0])
        self.clock += 1
        parents = self.heads[:-1] if stale and len(self.heads) > 1 else self.heads
        op = who.writer.write(body, time=self.clock, parents=parents)
        self.ops.append(op)
        covered = set(op.deps)
        self.heads = [h for h in self.heads if h not in covered] + [op.cid]
        return op

    def deliver(self, keys: list[bytes], to: list[_Person]) -> Any:
        return make_delivery(
            self.secret, [self.keys[k] for k in keys], [(p.did, p.enc.public_key) for p in to],
            self.rng,
        )  # fmt: skip

    def invite(self, sharer: _Person, to: _Person, perms: Permissions) -> Op:
        offer = self.write(sharer, Share(to.did, (self.recent,), None, perms))
        self.write(to, Accept(offer.cid, bytes(to.enc.public_key)))
        return self.write(sharer, Release(offer.cid, self.deliver([self.recent], [to])))

    def rotate(self, who: _Person, to: list[_Person]) -> Op:
        key = KeychainKey.generate(self.rng)
        fp = key_fingerprint(key)
        self.keys[fp] = key
        self.recent = fp
        return self.write(who, AddKey(fp, None, self.deliver([fp], [who, *to])))


def busy_log(size: int = LOG_SIZE) -> tuple[LogBuilder, list[_Person]]:
    """About ``size`` ops: 10 members joined, then a mix of everything, some concurrent."""
    b = LogBuilder(b"busy")
    members = [_Person(b.rng) for _ in range(10)]
    everyone = [b.owner, *members]
    for m in members:
        b.invite(b.owner, m, Permissions(sharing=True, rotation=True))
    pick = random.Random(7)
    while len(b.ops) < size:
        who = pick.choice(everyone)
        roll = pick.random()
        if roll < 0.45:
            outsider = _Person(b.rng)
            offer = b.write(who, Share(outsider.did, (b.recent,), None, Permissions()))
            b.write(who, Cancel(offer.cid), stale=pick.random() < 0.2)
        elif roll < 0.75:
            b.write(
                b.owner,
                SetPermissions(pick.choice(members).did, management=pick.random() < 0.5),
                stale=pick.random() < 0.2,
            )
        elif roll < 0.9:
            newcomer = _Person(b.rng)
            b.invite(who, newcomer, Permissions())
        else:
            b.rotate(who, [p for p in everyone if p is not who])
    return b, members


def _replay(ops: list[Op], keychain: str) -> Replica:
    replica = Replica(keychain)
    for op in ops:
        replica.add_op(op)
    replica.update()
    return replica


def bench_replay(rounds: int) -> dict[str, Any]:
    built = time.perf_counter()
    builder, members = busy_log()
    built = time.perf_counter() - built
    log = builder.ops
    keychain = log[0].cid
    blocks = [(op.cid, op.data) for op in log]
    stored = lambda: _replay([load_op(d, c) for c, d in blocks], keychain)  # noqa: E731
    cold = _best(stored, rounds)
    replica = stored()
    invalid = len(replica.state.invalid)

    fresh = _best(lambda: _replay([decode_op(d) for _, d in blocks], keychain), 1)
    key = SigningKey.from_seed(bytes(32))
    message = blocks[-1][1]
    signature = key.sign(message)
    verify = key.public_key.verify
    bare = _best(lambda: [verify(message, signature) for _ in range(len(blocks))], 1)

    # one more op, after everything replayed: applied directly
    owner = builder.owner
    assert owner.writer is not None
    extra = owner.writer.write(
        SetPermissions(members[0].did, rotation=True), time=builder.clock + 1,
        parents=replica.heads(),
    )  # fmt: skip
    start = time.perf_counter()
    replica.add(extra.data)  # the one new block, verified
    applied = replica.update()
    incremental = time.perf_counter() - start
    # one op concurrent with the last 100: the replica goes back to a checkpoint. Its
    # author is the member whose own last op is the oldest (an op's prev is a dependency).
    replica2 = stored()
    replica2.add(extra.data)
    replica2.update()
    position = {op.cid: i for i, op in enumerate(log)}
    late = min(
        members, key=lambda m: position[m.writer.last.cid] if m.writer and m.writer.last else 0
    )
    assert late.writer is not None and late.writer.last is not None
    stale = log[max(position[late.writer.last.cid], len(log) - 100)].cid
    concurrent = late.writer.write(
        Share(_Person(builder.rng).did, (builder.recent,), None, Permissions()),
        time=builder.clock + 2, parents=[stale],
    )  # fmt: skip
    start = time.perf_counter()
    replica2.add(concurrent.data)
    replica2.update()
    rewound = time.perf_counter() - start
    return {
        "log_ops": len(log),
        "invalid_ops": invalid,
        "build_s": round(built, 1),
        "cold_replay_s": round(cold, 3),
        "cold_replay_target_s": 1.0,
        "fresh_replica_verified_s": round(fresh, 3),
        "bare_ed25519_verifies_s": round(bare, 3),
        "incremental_one_op_s": round(incremental, 6),
        "incremental_blocks_read": 1,
        "incremental_ops_applied": len(applied),
        "incremental_vs_cold": round(incremental / cold, 5),
        "incremental_target_ratio": 0.05,
        "concurrent_op_s": round(rewound, 4),
        "concurrent_op_replayed_from": replica2.stats["restarts_from"],
    }


def bench_ban(rounds: int) -> dict[str, Any]:
    b = LogBuilder(b"members")
    people = [_Person(b.rng) for _ in range(MEMBERS - 1)]
    built = time.perf_counter()
    for p in people:
        b.invite(b.owner, p, Permissions())
    built = time.perf_counter() - built
    keychain = b.ops[0].cid
    base = _replay(b.ops, keychain)
    assert len(base.state.current_members()) == MEMBERS
    victim, rest = people[0], people[1:]

    timings = []
    sizes = 0
    for _ in range(rounds):
        replica = _replay(b.ops, keychain)
        start = time.perf_counter()
        owner = Writer(b.owner.signing, b.ops[0], last=b.owner.writer.last)  # type: ignore[union-attr]
        ban = owner.write(Ban(victim.did), time=b.clock + 1, parents=replica.heads())
        key = KeychainKey.generate()
        delivery = make_delivery(
            b.secret, [key], [(p.did, p.enc.public_key) for p in [b.owner, *rest]]
        )
        rotation = owner.write(AddKey(key_fingerprint(key), None, delivery), time=b.clock + 2)
        replica.add_op(ban)
        replica.add_op(rotation)
        replica.update()
        timings.append(time.perf_counter() - start)
        sizes = len(rotation.data)
        assert replica.state.members[victim.did].status == "banned"
        assert replica.state.most_recent_key(rest[-1].did, b.clock + 3).fp == key_fingerprint(key)  # type: ignore[union-attr]
    member = rest[-1]
    member_replica = _replay(b.ops, keychain)
    start = time.perf_counter()
    member_replica.add(ban.data)
    member_replica.add(rotation.data)
    member_replica.update()
    body = rotation.body
    assert isinstance(body, AddKey)
    open_delivery(body.delivery, member.did, member.enc, (body.key,))
    member_side = time.perf_counter() - start
    return {
        "members": MEMBERS,
        "log_ops": len(b.ops),
        "build_s": round(built, 1),
        "ban_with_rotation_s": round(min(timings), 3),
        "ban_with_rotation_target_s": 2.0,
        "rotation_op_bytes": sizes,
        "member_side_s": round(member_side, 4),
    }


def _seal_times(key: KeychainKey, size: int, count: int, rounds: int) -> dict[str, float]:
    fp = key_fingerprint(key)
    raw_key = key.secret_bytes()
    keys = {fp: key}  # what decrypt looks a key up in
    encrypt, decrypt, urandom = (
        crypto_aead_xchacha20poly1305_ietf_encrypt,
        crypto_aead_xchacha20poly1305_ietf_decrypt,
        os.urandom,
    )
    data, ad = os.urandom(size), b"doc"

    def raw_seal() -> bytes:
        for _ in range(count):
            nonce = urandom(24)
            out = nonce + encrypt(data, ad, nonce, raw_key)
        return out

    def our_seal() -> bytes:
        for _ in range(count):
            out = seal_message(key, fp, data, ad)
        return out

    raw_sealed, sealed = raw_seal(), our_seal()

    def raw_open() -> None:
        for _ in range(count):
            decrypt(raw_sealed[24:], ad, raw_sealed[:24], raw_key)

    def our_open() -> None:
        for _ in range(count):
            open_with(keys, sealed, ad)

    sides = {"raw_seal": raw_seal, "our_seal": our_seal, "raw_open": raw_open, "our_open": our_open}
    best = {name: float("inf") for name in sides}
    for _ in range(rounds + 1):  # alternate the sides; keep the best of each
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _keyring_times(size: int, count: int, rounds: int) -> dict[str, float]:
    """What ``mesh.keychains.encrypt``/``decrypt`` run once a keychain is loaded: the
    member's keyring picks its most recent key (cached) and seals, or finds the key a
    message names and opens it."""
    b = LogBuilder(b"keyring")
    replica = _replay(b.ops, b.ops[0].cid)
    keyring = Keyring(replica.keychain, b.owner.did)
    body = b.ops[0].body
    assert isinstance(body, Create)
    keyring.refresh(replica, b.owner.enc, body.name)
    _, key = keyring.most_recent(replica, T0 + 1)
    raw_key = key.secret_bytes()
    encrypt, decrypt, urandom = (
        crypto_aead_xchacha20poly1305_ietf_encrypt,
        crypto_aead_xchacha20poly1305_ietf_decrypt,
        os.urandom,
    )
    data, ad, now = os.urandom(size), b"doc", T0 + 1

    def raw_seal() -> bytes:
        for _ in range(count):
            nonce = urandom(24)
            out = nonce + encrypt(data, ad, nonce, raw_key)
        return out

    def our_seal() -> bytes:
        for _ in range(count):
            out = keyring.encrypt(replica, data, ad, now)
        return out

    raw_sealed, sealed = raw_seal(), our_seal()

    def raw_open() -> None:
        for _ in range(count):
            decrypt(raw_sealed[24:], ad, raw_sealed[:24], raw_key)

    def our_open() -> None:
        for _ in range(count):
            keyring.decrypt(sealed, ad)

    sides = {"raw_seal": raw_seal, "our_seal": our_seal, "raw_open": raw_open, "our_open": our_open}
    best = {name: float("inf") for name in sides}
    for _ in range(rounds + 1):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def bench_seal(rounds: int) -> dict[str, Any]:
    key = KeychainKey(os.urandom(32))
    out: dict[str, Any] = {}
    for size, count in ((1024, 20_000), (64 << 10, 2_000), (1 << 20, 200)):
        t = _seal_times(key, size, count, rounds)
        out[f"seal_{size}_ratio"] = round(t["raw_seal"] / t["our_seal"], 3)
        out[f"open_{size}_ratio"] = round(t["raw_open"] / t["our_open"], 3)
        k = _keyring_times(size, count, rounds)
        out[f"keychain_encrypt_{size}_ratio"] = round(k["raw_seal"] / k["our_seal"], 3)
        out[f"keychain_decrypt_{size}_ratio"] = round(k["raw_open"] / k["our_open"], 3)
    out["target_ratio"] = 0.9
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds = max(1, args.rounds)
    return {
        "replay": bench_replay(rounds),
        "ban": bench_ban(rounds),
        "seal": bench_seal(rounds),
        "load_average": os.getloadavg()[0],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(argparse.Namespace(rounds=2)), indent=2))
