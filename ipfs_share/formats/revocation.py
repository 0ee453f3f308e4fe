"""The revocation list: an issuer's signed, append-only set of revoked capsule IDs.

The set is a 256-ary trie of dag-cbor blocks keyed by ``sha256(binary capsule CID)``
(docs/spec/revocation.md). A node holding at most :data:`MAX_LEAF` IDs is a leaf (the
sorted binary CIDs); a bigger one is a branch of 256 children indexed by the next key
byte. The shape is a function of the set alone, so the same set always has the same root.
At 100,000 IDs a membership check reads three blocks: the head, the root branch and one
leaf (about 390 IDs, 15 KB). A signed head names the root, the count and the previous head.

Everything here is pure. Walks that need blocks are generators (:data:`BlockWalk`): drive
them with :func:`~ipfs_share.formats.signed.run_walk` and a ``get_block``, or from async
code with the storage layer.

>>> from ipfs_share.crypto.signing import SigningKey
>>> from ipfs_share.formats.signed import block_of, run_walk
>>> key = SigningKey.from_seed(bytes(32))
>>> store: dict[str, bytes] = {}
>>> ids = [block_of({"capsule": n}).cid for n in range(3)]
>>> result = run_walk(revoke(key, None, ids[:2], updated=1_800_000_000), store.__getitem__)
>>> store.update((b.cid, b.data) for b in result.blocks)
>>> result.head.seq, result.head.count
(0, 2)
>>> run_walk(is_revoked(result.head, ids[1]), store.__getitem__)
True
>>> run_walk(is_revoked(result.head, ids[2]), store.__getitem__)
False
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ipfs_share.crypto.labels import LABEL_REVOCATION_HEAD
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.errors import ChainInvalidError, FormatError
from ipfs_share.formats import feed
from ipfs_share.formats.cid import cid_bytes
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.signed import (
    Block,
    BlockWalk,
    Schema,
    block_from_bytes,
    dag_cbor_cid_bytes,
    decode_signed_any,
    decode_structure,
    did,
    did_key,
    encode_plain,
    is_dag_cbor_cid,
    link,
    list_of,
    nullable,
    sign_object,
    uint,
)

__all__ = [
    "FANOUT",
    "MAX_HEAD_SIZE",
    "MAX_LEAF",
    "MAX_NODE_SIZE",
    "REVOCATION_FEED",
    "Revocation",
    "RevocationHead",
    "TrieUpdate",
    "add",
    "audit",
    "contains",
    "decode_head",
    "decode_node",
    "is_revoked",
    "make_head",
    "revoke",
    "revoked_among",
    "trie_key",
    "verify_history",
]

FANOUT: Final = 256
MAX_LEAF: Final = 1024
KEY_SIZE: Final = 32
# A full leaf is 1,024 x 38 bytes + 12 = 38,924 bytes; a branch at most 256 x 41 + 15.
MAX_NODE_SIZE: Final = 64 * 1024
MAX_HEAD_SIZE: Final = 1024
_CID_SIZE: Final = 36  # a binary CIDv1 dag-cbor sha2-256: a capsule ID


_capsule_id_bytes = dag_cbor_cid_bytes  # leaves hold IDs, not links: nothing to follow


def _leaf_rules(value: dict[str, Any]) -> None:
    entries = value["leaf"]
    for i in range(1, len(entries)):
        if not entries[i - 1] < entries[i]:
            raise FormatError(
                f"expected leaf entries in strictly increasing byte order, found entry {i} "
                "out of order or repeated"
            )


def _branch_rules(value: dict[str, Any]) -> None:
    if all(child is None for child in value["branch"]):
        raise FormatError("expected a branch with at least one child, found none")


LEAF: Final = Schema(
    name="revocation leaf",
    label=b"",
    fields={"leaf": list_of(_capsule_id_bytes, MAX_LEAF, min_count=1)},
    signer=None,
    max_size=MAX_NODE_SIZE,
    max_counts={"leaf": MAX_LEAF},
    rules=_leaf_rules,
)
BRANCH: Final = Schema(
    name="revocation branch",
    label=b"",
    fields={"branch": list_of(nullable(link()), FANOUT, min_count=FANOUT)},
    signer=None,
    max_size=MAX_NODE_SIZE,
    max_counts={"branch": FANOUT},
    rules=_branch_rules,
)
_NODES: Final = (LEAF, BRANCH)


def _head_rules(value: dict[str, Any]) -> None:
    if (value["seq"] == 0) != (value["prev"] is None):
        raise FormatError(
            f"expected prev to be null exactly when seq is 0, found seq {value['seq']} "
            f"and prev {'null' if value['prev'] is None else 'a link'}"
        )
    if (value["count"] == 0) != (value["root"] is None):
        raise FormatError(
            f"expected root to be null exactly when count is 0, found count {value['count']}"
        )


HEAD: Final = Schema(
    name="revocation head",
    label=LABEL_REVOCATION_HEAD,
    fields={
        "issuer": did,
        "seq": uint,
        "count": uint,
        "root": nullable(link()),
        "prev": nullable(link()),
        "updated": uint,
    },
    signer="issuer",
    max_size=MAX_HEAD_SIZE,
    rules=_head_rules,
)


@dataclass(frozen=True, slots=True)
class RevocationHead:
    """A verified head: the list after ``seq + 1`` updates, holding ``count`` IDs."""

    issuer: str
    seq: int
    count: int
    root: Link | None
    prev: Link | None
    updated: int
    cid: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class TrieUpdate:
    """The result of :func:`add`: the new root, the blocks to store (every node on the
    changed paths, children before parents), and how many IDs were new."""

    root: Link | None
    blocks: tuple[Block, ...]
    added: int


@dataclass(frozen=True, slots=True)
class Revocation:
    """The result of :func:`revoke`: the new signed head and every new block (the head
    last), ready to store and then publish under the list's IPNS name."""

    head: RevocationHead
    blocks: tuple[Block, ...]


def trie_key(capsule_id: str | Link | bytes) -> bytes:
    """The 32-byte trie key of a capsule ID: sha256 of its binary CID."""
    return hashlib.sha256(_id_bytes(capsule_id)).digest()


def _id_bytes(capsule_id: str | Link | bytes) -> bytes:
    if isinstance(capsule_id, str):
        raw = cid_bytes(capsule_id)
    elif isinstance(capsule_id, Link):
        raw = bytes(capsule_id)
    else:
        raw = capsule_id
    if not is_dag_cbor_cid(raw):
        raise FormatError("expected a capsule ID (a CIDv1 of a dag-cbor block, sha2-256)")
    return raw


# --- trie nodes ---------------------------------------------------------------------------


def decode_node(data: bytes) -> dict[str, Any]:
    """Decode a trie node: ``{"v": 1, "leaf": [...]}`` or ``{"v": 1, "branch": [...]}``."""
    return decode_structure(_NODES, data)[1]


def _leaf(entries: Iterable[bytes]) -> Block:
    return encode_plain(LEAF, {"leaf": sorted(entries)})


def _build(entries: dict[bytes, bytes], depth: int) -> tuple[Link, list[Block]]:
    """The canonical subtree for ``entries`` (binary CID -> key) at ``depth``."""
    if len(entries) <= MAX_LEAF:
        block = _leaf(entries)
        return Link(block.cid), [block]
    if depth >= KEY_SIZE:  # 1,025 IDs sharing a 32-byte sha256: never, short of a collision
        raise FormatError("expected distinct trie keys, found more than a leaf of equal keys")
    groups = _group(entries, depth)
    children: list[Link | None] = [None] * FANOUT
    blocks: list[Block] = []
    for index, group in groups.items():
        children[index], sub = _build(group, depth + 1)
        blocks += sub
    branch = encode_plain(BRANCH, {"branch": children})
    blocks.append(branch)
    return Link(branch.cid), blocks


def _group(entries: dict[bytes, bytes], depth: int) -> dict[int, dict[bytes, bytes]]:
    groups: dict[int, dict[bytes, bytes]] = {}
    for raw, key in entries.items():
        groups.setdefault(key[depth], {})[raw] = key
    return groups


def add(root: Link | None, capsule_ids: Iterable[str | Link | bytes]) -> BlockWalk[TrieUpdate]:
    """Add IDs to the trie at ``root``, copy-on-write: only nodes on changed paths are
    rewritten; IDs already present change nothing."""
    entries = {raw: hashlib.sha256(raw).digest() for raw in map(_id_bytes, capsule_ids)}
    if not entries:
        return TrieUpdate(root, (), 0)
    new_root, blocks, added = yield from _insert(root, entries, 0)
    return TrieUpdate(new_root, tuple(blocks), added)


def _insert(
    node: Link | None, entries: dict[bytes, bytes], depth: int
) -> BlockWalk[tuple[Link | None, list[Block], int]]:
    if node is None:
        built, blocks = _build(entries, depth)
        return built, blocks, len(entries)
    fields = decode_node((yield node.cid))
    if "leaf" in fields:
        old = fields["leaf"]
        merged = {raw: hashlib.sha256(raw).digest() for raw in old}
        merged.update(entries)
        if len(merged) == len(old):
            return node, [], 0
        built, blocks = _build(merged, depth)
        return built, blocks, len(merged) - len(old)
    if depth >= KEY_SIZE:
        raise FormatError(f"expected a leaf at depth {KEY_SIZE}, found a branch")
    children: list[Link | None] = list(fields["branch"])
    blocks = []
    added = 0
    for index, group in sorted(_group(entries, depth).items()):
        child, sub, count = yield from _insert(children[index], group, depth + 1)
        children[index] = child
        blocks += sub
        added += count
    if not added:
        return node, [], 0
    branch = encode_plain(BRANCH, {"branch": children})
    blocks.append(branch)
    return Link(branch.cid), blocks, added


def contains(root: Link | None, capsule_id: str | Link | bytes) -> BlockWalk[bool]:
    """Is ``capsule_id`` in the trie at ``root``? Reads one block per level."""
    raw = _id_bytes(capsule_id)
    key = hashlib.sha256(raw).digest()
    node = root
    depth = 0
    while node is not None:
        fields = decode_node((yield node.cid))
        if "leaf" in fields:
            entries = fields["leaf"]
            at = bisect.bisect_left(entries, raw)
            return at < len(entries) and entries[at] == raw
        if depth >= KEY_SIZE:
            raise FormatError(f"expected a leaf at depth {KEY_SIZE}, found a branch")
        node = fields["branch"][key[depth]]
        depth += 1
    return False


def revoked_among(
    head: RevocationHead, capsule_ids: Iterable[str | Link | bytes]
) -> BlockWalk[set[bytes]]:
    """Which of ``capsule_ids`` are revoked at ``head``, as binary CIDs: one walk that
    reads each trie node on their paths once (a few hundred blocks for any number of IDs
    at 100,000 revoked), where :func:`is_revoked` per ID would read three blocks each.

    >>> from ipfs_share.crypto.signing import SigningKey
    >>> from ipfs_share.formats.signed import block_of, run_walk
    >>> store: dict[str, bytes] = {}
    >>> ids = [block_of({"capsule": n}).cid for n in range(3)]
    >>> made = run_walk(revoke(SigningKey.from_seed(bytes(32)), None, ids[:2], updated=0),
    ...                 store.__getitem__)
    >>> store.update((b.cid, b.data) for b in made.blocks)
    >>> found = run_walk(revoked_among(made.head, ids), store.__getitem__)
    >>> sorted(found) == sorted(cid_bytes(i) for i in ids[:2])
    True
    """
    found: set[bytes] = set()
    if head.root is None:  # an empty list (most are): nothing to read or hash
        return found
    wanted = {}
    for capsule_id in capsule_ids:
        raw = _id_bytes(capsule_id)
        wanted[raw] = hashlib.sha256(raw).digest()
    if not wanted:
        return found
    todo: list[tuple[Link, int, list[bytes]]] = [(head.root, 0, list(wanted))]
    while todo:
        node, depth, ids = todo.pop()
        fields = decode_node((yield node.cid))
        if "leaf" in fields:
            entries = set(fields["leaf"])
            found.update(raw for raw in ids if raw in entries)
            continue
        if depth >= KEY_SIZE:
            raise FormatError(f"expected a leaf at depth {KEY_SIZE}, found a branch")
        below: dict[int, list[bytes]] = {}
        for raw in ids:
            below.setdefault(wanted[raw][depth], []).append(raw)
        for index, group in below.items():
            child = fields["branch"][index]
            if child is not None:
                todo.append((child, depth + 1, group))
    return found


def audit(head: RevocationHead) -> BlockWalk[int]:
    """Read the whole trie of ``head`` and check it is the canonical trie of ``count``
    IDs: every ID under the path of its key, leaves only where a node holds at most
    :data:`MAX_LEAF` IDs, branches only above that. Returns the count."""
    if head.root is None:
        return 0
    total = yield from _audit(head.root, b"")
    if total != head.count:
        raise FormatError(f"expected {head.count} IDs under the root, found {total}")
    return total


def _audit(node: Link, prefix: bytes) -> BlockWalk[int]:
    fields = decode_node((yield node.cid))
    if "leaf" in fields:
        for raw in fields["leaf"]:
            if not hashlib.sha256(raw).digest().startswith(prefix):
                raise FormatError(
                    f"expected leaf IDs under key prefix {prefix.hex()}, found one elsewhere"
                )
        return len(fields["leaf"])
    if len(prefix) >= KEY_SIZE:
        raise FormatError(f"expected a leaf at depth {KEY_SIZE}, found a branch")
    total = 0
    for index, child in enumerate(fields["branch"]):
        if child is not None:
            total += yield from _audit(child, prefix + bytes((index,)))
    if total <= MAX_LEAF:
        raise FormatError(f"expected a leaf for {total} IDs (at most {MAX_LEAF}), found a branch")
    return total


# --- heads --------------------------------------------------------------------------------


def make_head(
    key: SigningKey,
    *,
    seq: int,
    count: int,
    root: Link | None,
    prev: Link | None,
    updated: int,
) -> RevocationHead:
    """Sign a head with the issuer's identity key (not the list's IPNS key)."""
    fields = {
        "issuer": did_key(key.public_key),
        "seq": seq,
        "count": count,
        "root": root,
        "prev": prev,
        "updated": updated,
    }
    return decode_head(sign_object(HEAD, fields, key).data)


def decode_head(
    data: bytes, *, issuer: str | None = None, signers: feed.Signers | None = None
) -> RevocationHead:
    """Decode and verify a head; ``issuer`` (if given) must be its signer."""
    return _head(data, issuer=issuer, signers=signers, verify=True)


def _head(
    data: bytes, *, issuer: str | None, signers: feed.Signers | None, verify: bool
) -> RevocationHead:
    keys = None if signers is None else signers.key_for
    fields = decode_signed_any((HEAD,), data, signer=issuer, keys=keys, verify=verify)[1]
    block = block_from_bytes(data)
    return RevocationHead(
        issuer=fields["issuer"],
        seq=fields["seq"],
        count=fields["count"],
        root=fields["root"],
        prev=fields["prev"],
        updated=fields["updated"],
        cid=block.cid,
        data=block.data,
    )


def revoke(
    key: SigningKey,
    head: RevocationHead | None,
    capsule_ids: Iterable[str | Link | bytes],
    *,
    updated: int,
) -> BlockWalk[Revocation]:
    """Add ``capsule_ids`` to the list whose current head is ``head`` (``None``: a new
    list) and sign the next head. A call that adds nothing still makes a new head (a
    fresh ``updated`` time tells readers the list is live)."""
    if head is not None and head.issuer != did_key(key.public_key):
        raise FormatError("expected the head of this key's own list, found another issuer's")
    update = yield from add(None if head is None else head.root, capsule_ids)
    new_head = make_head(
        key,
        seq=0 if head is None else head.seq + 1,
        count=(0 if head is None else head.count) + update.added,
        root=update.root,
        prev=None if head is None else Link(head.cid),
        updated=updated,
    )
    return Revocation(new_head, (*update.blocks, block_from_bytes(new_head.data)))


def is_revoked(head: RevocationHead, capsule_id: str | Link | bytes) -> BlockWalk[bool]:
    """Is ``capsule_id`` revoked in the list at ``head``? (Three blocks at 100,000 IDs,
    counting the head the caller already read.)"""
    return (yield from contains(head.root, capsule_id))


def _feed_entry(data: bytes, signers: feed.Signers | None) -> feed.FeedEntry:
    head = _head(data, issuer=None, signers=signers, verify=signers is not None)
    return _as_entry(head)


def _as_entry(head: RevocationHead) -> feed.FeedEntry:
    return feed.FeedEntry(
        kind="revocation",
        seq=head.seq,
        prev=None if head.prev is None else head.prev.cid,
        signer=head.issuer,
        cid=head.cid,
        data=head.data,
        value=head,
    )


def _step(older: feed.FeedEntry, newer: feed.FeedEntry) -> None:
    """A list only grows: the head before another holds at most as many IDs."""
    if older.value.count > newer.value.count:
        raise ChainInvalidError(
            f"expected the head before seq {newer.seq} to hold at most {newer.value.count} "
            f"IDs, found {older.value.count}"
        )


# A revocation list is a linked feed whose head holds the whole set: a first reader takes
# the head alone; a reader with a mark walks back to it. Its heads link only to its own
# trie and heads, so one recursive pin of the head keeps it all.
REVOCATION_FEED: Final = feed.register(
    feed.FeedKind(
        name="revocation", read=_feed_entry, linked=True, history=False, pin="head", step=_step
    )
)


def verify_history(head: RevocationHead, known: RevocationHead) -> BlockWalk[None]:
    """Check that ``head`` extends ``known`` (a head checked earlier): same issuer, and
    its ``prev`` links lead back to ``known`` with seq falling by one per step and count
    never growing backwards. Raises :class:`~ipfs_share.errors.FeedRollbackError` for an
    older head, :class:`~ipfs_share.errors.FeedForkError` for another history."""
    if head.issuer != known.issuer:
        raise ChainInvalidError(f"expected heads of {known.issuer}, found {head.issuer}")
    yield from feed.walk(
        REVOCATION_FEED,
        head.cid,
        signers=feed.Only(known.issuer),
        known=feed.Mark.of(known),
        head_entry=_as_entry(head),
    )
