"""Generate the revocation list vectors (docs/spec/revocation.md).

Run from the repository root: ``.venv/bin/python tests/vectors/revocation/generate.py``.

``kind: head`` -- the body is a head; ``issuer`` (when present) is the signer the reader
expects; ``cid``, ``seq`` and ``count`` pin a success.

``kind: node`` -- the body is a trie node (leaf or branch), decoded on its own.

``kind: lookup`` -- ``block_0``, ``block_1``, ... are the only blocks stored (each under
its CID); the reader reads the head ``head`` (signed by ``issuer``) and checks whether
``capsule`` is in the list: ``revoked`` (true/false) and ``reads`` (blocks read, the head
included) pin a success.

``kind: history`` -- blocks as above; the reader checks that head ``head`` extends the
head ``known`` (both read from the blocks).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import vectorfile  # noqa: E402

from ipfs_share.crypto.labels import LABEL_REVOCATION_HEAD  # noqa: E402
from ipfs_share.crypto.random import DeterministicRng  # noqa: E402
from ipfs_share.crypto.signing import SigningKey  # noqa: E402
from ipfs_share.formats import dagcbor  # noqa: E402
from ipfs_share.formats.cid import DAG_CBOR, cid_from_digest  # noqa: E402
from ipfs_share.formats.dagcbor import Link  # noqa: E402
from ipfs_share.formats.revocation import (  # noqa: E402
    FANOUT,
    MAX_LEAF,
    RevocationHead,
    make_head,
    revoke,
    trie_key,
)
from ipfs_share.formats.signed import Block, did_key, run_walk  # noqa: E402

UPDATED = 1_800_000_000


def _rng(scenario: str) -> DeterministicRng:
    return DeterministicRng(b"ipfs-share/vectors/revocation/" + scenario.encode())


def _ids(rng: DeterministicRng, n: int) -> list[str]:
    """n capsule IDs (dag-cbor CIDs of blocks nobody needs to have)."""
    return [cid_from_digest(DAG_CBOR, rng(32)) for _ in range(n)]


def _signed(value: dict[str, Any], key: SigningKey) -> bytes:
    """Sign any map as a head would be (for objects the encoder refuses)."""
    body = {k: v for k, v in value.items() if k != "sig"}
    body["sig"] = key.sign(LABEL_REVOCATION_HEAD + dagcbor.encode(body))
    return dagcbor.encode(body)


class Store(dict[str, bytes]):
    def put(self, blocks: tuple[Block, ...]) -> None:
        self.update((b.cid, b.data) for b in blocks)

    def path(self, head: RevocationHead, capsule: str) -> list[bytes]:
        """The blocks a lookup of ``capsule`` reads: the head, then one node per level."""
        out = [head.data]
        key = trie_key(capsule)
        node = head.root
        depth = 0
        while node is not None:
            value = dagcbor.decode(self[node.cid])
            out.append(self[node.cid])
            if "leaf" in value:
                break
            node = value["branch"][key[depth]]
            depth += 1
        return out


def _list(
    key: SigningKey, ids: list[str], store: Store, head: RevocationHead | None = None
) -> RevocationHead:
    result = run_walk(revoke(key, head, ids, updated=UPDATED), store.__getitem__)
    store.put(result.blocks)
    return result.head


def build() -> dict[str, str]:
    """Scenario name -> file text."""
    files: dict[str, str] = {}
    _heads(files)
    _nodes(files)
    _lookups(files)
    return files


def _heads(files: dict[str, str]) -> None:
    def head_vector(name: str, expect: str, comment: str, body: bytes, **extra: Any) -> None:
        files[name] = vectorfile.dump(
            {"expect": expect, "kind": "head", "comment": comment, **extra}, body=body
        )

    rng = _rng("head_success")
    key = SigningKey.generate(rng)
    store = Store()
    head = _list(key, _ids(rng, 5), store)
    head = _list(key, _ids(rng, 2), store, head)
    head_vector(
        "head_success",
        "success",
        "the second head (seq 1) of a list of 7 IDs",
        head.data,
        issuer=head.issuer,
        cid=head.cid,
        seq=1,
        count=7,
    )
    empty = make_head(key, seq=0, count=0, root=None, prev=None, updated=UPDATED)
    head_vector(
        "head_empty_success",
        "success",
        "a new, empty list: root and prev null",
        empty.data,
        issuer=empty.issuer,
        cid=empty.cid,
        seq=0,
        count=0,
    )

    data = bytearray(head.data)
    data[data.index(b"\x63sig\x58\x40") + 6] ^= 0x01
    head_vector("head_bad_signature", "signature_invalid", "one bit of sig flipped", bytes(data))
    other = SigningKey.generate(rng)
    head_vector(
        "head_wrong_signer",
        "signature_invalid",
        "a valid head of another issuer than the one whose list the reader resolved",
        head.data,
        issuer=did_key(other.public_key),
    )
    value = dagcbor.decode(head.data)
    head_vector(
        "head_forged_issuer",
        "signature_invalid",
        "names one issuer, signed by another key",
        _signed(value, other),
    )
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("head_unknown_version", "v is 2 (validly signed)", {**value, "v": 2}),
        ("head_extra_field", "an unknown key 'note' (validly signed)", {**value, "note": ""}),
        (
            "head_missing_field",
            "no 'count' (validly signed)",
            {k: v for k, v in value.items() if k != "count"},
        ),
        ("head_oversize", "over 1024 bytes (validly signed)", {**value, "y" * 1024: 0}),
        ("head_seq0_with_prev", "seq 0 with a prev link (validly signed)", {**value, "seq": 0}),
        (
            "head_count_without_root",
            "count 7 with root null (validly signed)",
            {**value, "root": None},
        ),
        (
            "head_root_not_dag_cbor",
            "root is a raw CID (validly signed)",
            {**value, "root": Link("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")},
        ),
    ]
    for name, comment, changed in cases:
        head_vector(name, "format_invalid", comment, _signed(changed, key))


def _nodes(files: dict[str, str]) -> None:
    def node_vector(name: str, expect: str, comment: str, value: Any) -> None:
        files[name] = vectorfile.dump(
            {"expect": expect, "kind": "node", "comment": comment}, body=dagcbor.encode(value)
        )

    rng = _rng("nodes")
    raw = sorted(bytes(Link(c)) for c in _ids(rng, MAX_LEAF + 1))
    child = Link(cid_from_digest(DAG_CBOR, rng(32)))
    node_vector("leaf_success", "success", "a leaf of 3 IDs", {"v": 1, "leaf": raw[:3]})
    branch = [None] * FANOUT
    branch[7] = child
    node_vector(
        "branch_success", "success", "a branch with one child (index 7)", {"v": 1, "branch": branch}
    )
    node_vector(
        "leaf_oversize",
        "format_invalid",
        f"a leaf of {MAX_LEAF + 1} IDs: it must be a branch",
        {"v": 1, "leaf": raw},
    )
    node_vector(
        "leaf_unsorted",
        "format_invalid",
        "two IDs out of order",
        {"v": 1, "leaf": [raw[1], raw[0]]},
    )
    node_vector(
        "leaf_duplicate", "format_invalid", "one ID twice", {"v": 1, "leaf": [raw[0], raw[0]]}
    )
    node_vector(
        "leaf_empty", "format_invalid", "no IDs: an empty subtree is null", {"v": 1, "leaf": []}
    )
    node_vector(
        "leaf_not_capsule_id",
        "format_invalid",
        "an entry that is a raw CID, not a capsule ID",
        {
            "v": 1,
            "leaf": [bytes(Link("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"))],
        },
    )
    node_vector("branch_short", "format_invalid", "255 children", {"v": 1, "branch": branch[:-1]})
    node_vector(
        "branch_empty",
        "format_invalid",
        "256 nulls: an empty subtree is null",
        {"v": 1, "branch": [None] * FANOUT},
    )
    node_vector("node_unknown_version", "format_invalid", "v is 2", {"v": 2, "leaf": raw[:1]})
    node_vector(
        "node_both_kinds",
        "format_invalid",
        "both leaf and branch",
        {"v": 1, "leaf": raw[:1], "branch": branch},
    )


def _lookups(files: dict[str, str]) -> None:
    def block_vector(
        name: str, kind: str, expect: str, comment: str, blocks: list[bytes], **extra: Any
    ) -> None:
        fields: dict[str, Any] = {"expect": expect, "kind": kind, "comment": comment, **extra}
        for i, data in enumerate(blocks):
            fields[f"block_{i}"] = data
        files[name] = vectorfile.dump(fields)

    rng = _rng("lookup_branch")
    key = SigningKey.generate(rng)
    store = Store()
    ids = _ids(rng, MAX_LEAF + 76)  # 1,100: the root is a branch
    head = _list(key, ids, store)
    target = ids[555]
    assert hashlib.sha256(bytes(Link(target))).digest() == trie_key(target)
    block_vector(
        "lookup_revoked",
        "lookup",
        "success",
        "1,100 IDs (root branch, 256 leaves): a revoked ID, found in 3 reads",
        store.path(head, target),
        issuer=head.issuer,
        head=head.cid,
        capsule=target,
        revoked="true",
        reads=3,
    )
    absent = _ids(rng, 1)[0]
    block_vector(
        "lookup_not_revoked",
        "lookup",
        "success",
        "the same list: an ID that is not in it (its leaf is read, it is not there)",
        store.path(head, absent),
        issuer=head.issuer,
        head=head.cid,
        capsule=absent,
        revoked="false",
        reads=3,
    )

    rng = _rng("lookup_small")
    key = SigningKey.generate(rng)
    store = Store()
    ids = _ids(rng, 3)
    head = _list(key, ids, store)
    block_vector(
        "lookup_small",
        "lookup",
        "success",
        "3 IDs: the root is a leaf; 2 reads",
        store.path(head, ids[2]),
        issuer=head.issuer,
        head=head.cid,
        capsule=ids[2],
        revoked="true",
        reads=2,
    )
    empty = make_head(key, seq=0, count=0, root=None, prev=None, updated=UPDATED)
    block_vector(
        "lookup_empty",
        "lookup",
        "success",
        "an empty list: only the head is read",
        [empty.data],
        issuer=empty.issuer,
        head=empty.cid,
        capsule=ids[0],
        revoked="false",
        reads=1,
    )

    rng = _rng("history")
    key = SigningKey.generate(rng)
    store = Store()
    heads = [_list(key, _ids(rng, 2), store)]
    for _ in range(3):
        heads.append(_list(key, _ids(rng, 2), store, heads[-1]))
    fork_2 = _list(key, _ids(rng, 1), store, heads[1])
    fork = _list(key, _ids(rng, 1), store, fork_2)
    data = [h.data for h in heads]
    block_vector(
        "history_success",
        "history",
        "success",
        "head seq 3 extends the head at seq 1",
        data,
        head=heads[3].cid,
        known=heads[1].cid,
    )
    block_vector(
        "history_fork",
        "history",
        "feed_fork",
        "a head at seq 3 whose seq 2 is not the seq 2 read before",
        [heads[2].data, fork_2.data, fork.data],
        head=fork.cid,
        known=heads[2].cid,
    )
    shrunk = make_head(
        key,
        seq=4,
        count=heads[3].count - 1,
        root=heads[3].root,
        prev=Link(heads[3].cid),
        updated=heads[3].updated,
    )
    block_vector(
        "history_shrinks",
        "history",
        "chain_invalid",
        "a head at seq 4 that holds fewer IDs than the seq 3 it follows",
        [*data, shrunk.data],
        head=shrunk.cid,
        known=heads[2].cid,
    )
    block_vector(
        "history_rollback",
        "history",
        "feed_rollback",
        "a head older (seq 1) than the one read before (seq 3)",
        data,
        head=heads[1].cid,
        known=heads[3].cid,
    )


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
