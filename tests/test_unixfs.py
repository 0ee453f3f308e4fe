"""UnixFS building and reading, checked against the real Kubo binary (no daemon needed).

Every CID the builder computes is compared with ``ipfs add --only-hash`` over a throwaway
repo made once per module; equal CIDs mean equal bytes for every block of the DAG.
"""

from __future__ import annotations

import array
import itertools
import os
import random
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_share.errors import FormatError, InvalidInputError
from ipfs_share.formats.cid import DAG_PB, RAW, cid_bytes, cid_for, parse_cid
from ipfs_share.formats.dagpb import PBLink, PBNode, decode_node, encode_node
from ipfs_share.formats.protobuf import field_bytes, field_varint
from ipfs_share.formats.unixfs import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_LINKS,
    MAX_CHUNK_SIZE,
    Block,
    DataType,
    FileBuilder,
    UnixFSData,
    decode_data,
    decode_file_node,
    encode_data,
    plan_read,
)
from ipfs_share.paths import KUBO_VERSION, cache_dir
from ipfs_share.storage.base import UNIXFS_PARAMS

KUBO = cache_dir() / "kubo" / KUBO_VERSION / "ipfs"
EMPTY_FILE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

# The worked example of docs/spec/content-addressing.md: `seq 1 1000`, 1024-byte chunks,
# at most 3 links per node.
SEQ_1000 = "".join(f"{i}\n" for i in range(1, 1001)).encode()
SEQ_1000_ROOT = "bafybeicnnii77456qiql3bypyoka5ldvqe272avt6gfacwyq3to4x7mkzi"
# The same input at the default parameters is one raw leaf; `seq 1 100000` is three leaves.
SEQ_1000_DEFAULT = "bafkreidh2t7xdvbzehkxhhzypwqjorxuaxsclmd5oj7ey2oqffdb2hyfd4"
SEQ_100000_DEFAULT = "bafybeig7vkipkynigaihao6aewpeioskcuvdhmz7wohxtqqjs6ns6tytya"

KuboAdd = Callable[[Sequence[bytes], int, int], list[str]]


@pytest.fixture(scope="module")
def kubo_repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not KUBO.exists():
        pytest.skip(f"Kubo {KUBO_VERSION} is not installed at {KUBO}")
    repo = tmp_path_factory.mktemp("kubo-repo")
    env = {**os.environ, "IPFS_PATH": str(repo)}
    subprocess.run([KUBO, "init", "--profile=test"], env=env, check=True, capture_output=True)
    return env


@pytest.fixture(scope="module")
def kubo_add(kubo_repo: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> KuboAdd:
    """Hash files with stock `ipfs add` (one process per batch); return their root CIDs."""
    workdir = tmp_path_factory.mktemp("kubo-inputs")

    def add(files: Sequence[bytes], chunk: int, max_links: int) -> list[str]:
        paths: list[str] = []
        for i, data in enumerate(files):
            path = workdir / f"f{i}"
            path.write_bytes(data)
            paths.append(str(path))
        proc = subprocess.run(
            [
                KUBO,
                "add",
                "--only-hash",
                "--cid-version=1",
                "--raw-leaves",
                f"--chunker=size-{chunk}",
                f"--max-file-links={max_links}",
                *paths,
            ],
            env=kubo_repo,
            check=True,
            capture_output=True,
            text=True,
        )
        # Lines read "added <cid> <name>"; map by name rather than trust the order.
        by_name = {}
        for line in proc.stdout.splitlines():
            _, cid, name = line.split(" ", 2)
            by_name[name] = cid
        return [by_name[f"f{i}"] for i in range(len(files))]

    return add


def build(
    data: bytes, chunk: int, max_links: int, pieces: Sequence[int] = (1 << 30,)
) -> tuple[str, list[Block]]:
    """Feed ``data`` in pieces cycling through the given sizes; return (root, blocks)."""
    builder = FileBuilder(chunk_size=chunk, max_links=max_links)
    blocks: list[Block] = []
    view = memoryview(data)
    pos = 0
    for size in itertools.cycle(pieces):
        if pos >= len(data):
            break
        blocks += builder.feed(view[pos : pos + size])
        pos += size
    root, rest = builder.finish()
    assert builder.size == len(data)
    return root, blocks + rest


def read_range(store: dict[str, Block], cid: str, offset: int, length: int) -> bytes:
    """Read a file range the way a store does: one node at a time, only what is needed."""
    block = store[cid]
    if block.codec == RAW:
        return block.data[offset : offset + length]
    plan = plan_read(decode_file_node(block.data), offset, length)
    return plan.inline + b"".join(
        read_range(store, c.cid, c.offset, c.length) for c in plan.children
    )


def check_dag(root: str, blocks: list[Block], data: bytes, max_links: int) -> None:
    """Every block hashes to its CID, each is needed once, and the DAG spells ``data``."""
    store = {b.cid: b for b in blocks}
    for b in blocks:
        assert cid_for(b.codec, b.data) == b.cid
        assert parse_cid(b.cid).codec == b.codec
    assert read_range(store, root, 0, len(data)) == data
    # Leaves repeat when chunks repeat; otherwise no block is emitted twice.
    assert len({b.cid for b in blocks if b.codec == DAG_PB}) == sum(
        b.codec == DAG_PB for b in blocks
    )
    # Balanced: only nodes on the right edge (at most one per level) are not full.
    widths = [len(decode_node(b.data).links) for b in blocks if b.codec == DAG_PB]
    assert all(1 <= width <= max_links for width in widths)
    assert sum(width < max_links for width in widths) <= tree_depth(store, root)


def tree_depth(store: dict[str, Block], cid: str) -> int:
    block = store[cid]
    if block.codec == RAW:
        return 0
    return 1 + tree_depth(store, decode_node(block.data).links[-1].cid)


def rand_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# --- against Kubo -----------------------------------------------------------------------

ODD_PIECES = [(1 << 30,), (1,), (7,), (100000,), (1, 1023, 7, 100000, 3, 2048)]


@pytest.mark.parametrize(("chunk", "max_links"), [(1024, 3), (1024, 5), (7, 2)])
def test_small_parameters_match_kubo(kubo_add: KuboAdd, chunk: int, max_links: int) -> None:
    c, m = chunk, max_links
    sizes = sorted(
        {0, 1, c - 1, c, c + 1, m * c, m * c + 1, m * m * c, m * m * c + 1, m**3 * c}
        | {m**3 * c + 1, m**3 * c + m * c + 5, m * m * c + c - 1}
    )
    if m == 2:  # deeper trees are cheap with 7-byte chunks: up to depth 7
        sizes += [2**6 * c, 2**6 * c + 1, 100 * c + 3]
    files = [rand_bytes(size, seed=size) for size in sizes]
    expected = kubo_add(files, c, m)
    for i, (data, want) in enumerate(zip(files, expected)):
        pieces = ODD_PIECES[i % len(ODD_PIECES)] if len(data) < 20000 else ODD_PIECES[-1]
        root, blocks = build(data, c, m, pieces)
        assert root == want, (len(data), pieces)
        check_dag(root, blocks, data, m)


def test_default_parameters_match_kubo(kubo_add: KuboAdd) -> None:
    c, m = DEFAULT_CHUNK_SIZE, DEFAULT_MAX_LINKS
    sizes = [c - 1, c, c + 1, 3 * 2**20 + 5, m * c, m * c + 1]
    big = rand_bytes(m * c + 1, seed=7)
    files = [big[:size] for size in sizes]
    expected = kubo_add(files, c, m)
    for data, want in zip(files, expected):
        root, _ = build(data, c, m, (100000, c, 3 * c + 1))
        assert root == want, len(data)
    assert kubo_add([SEQ_1000, b"".join(f"{i}\n".encode() for i in range(1, 100001))], c, m) == [
        SEQ_1000_DEFAULT,
        SEQ_100000_DEFAULT,
    ]


def test_empty_file_is_the_empty_raw_block(kubo_add: KuboAdd) -> None:
    assert kubo_add([b""], 1024, 3) == [EMPTY_FILE_CID]
    root, blocks = FileBuilder().finish()
    assert root == EMPTY_FILE_CID == cid_for(RAW, b"")
    assert blocks == [Block(EMPTY_FILE_CID, b"", RAW)]


def test_single_chunk_file_is_its_raw_leaf() -> None:
    for data in (b"x", rand_bytes(DEFAULT_CHUNK_SIZE, seed=1)):
        root, blocks = build(data, DEFAULT_CHUNK_SIZE, DEFAULT_MAX_LINKS, (5,))
        assert root == cid_for(RAW, data)
        assert blocks == [Block(root, data, RAW)]


def test_worked_example_bytes_match_kubo(kubo_repo: dict[str, str], tmp_path: Path) -> None:
    """The spec's example, stored for real: Kubo's block bytes equal ours, node by node."""
    path = tmp_path / "seq"
    path.write_bytes(SEQ_1000)
    args = ["--cid-version=1", "--raw-leaves", "--chunker=size-1024", "--max-file-links=3"]

    def ipfs(*argv: str) -> bytes:
        return subprocess.run([KUBO, *argv], env=kubo_repo, check=True, capture_output=True).stdout

    root = ipfs("add", "--quieter", *args, str(path)).decode().strip()
    ours, blocks = build(SEQ_1000, 1024, 3)
    assert root == ours == SEQ_1000_ROOT
    for b in blocks:
        assert ipfs("block", "get", b.cid) == b.data


def test_links_have_empty_names_and_cumulative_tsize() -> None:
    """The rules Kubo's CIDs depend on, stated directly (the CID tests prove them)."""
    data = rand_bytes(40 * 100 + 17, seed=3)
    root, blocks = build(data, 100, 4)
    store = {b.cid: b for b in blocks}

    def cumulative(cid: str) -> int:
        block = store[cid]
        if block.codec == RAW:
            return len(block.data)
        return len(block.data) + sum(cumulative(link.cid) for link in decode_node(block.data).links)

    for b in blocks:
        if b.codec == DAG_PB:
            node = decode_node(b.data)
            assert all(link.name == "" for link in node.links)
            assert [link.tsize for link in node.links] == [
                cumulative(link.cid) for link in node.links
            ]
            msg = decode_data(node.data or b"")
            assert msg.type == DataType.FILE and msg.data is None
            assert b.data.endswith(field_bytes(1, encode_data(msg)))  # Data after the links
    # The root's own cumulative size is what `ipfs object stat` calls CumulativeSize.
    assert cumulative(root) == sum(len(b.data) for b in blocks)


# --- streaming --------------------------------------------------------------------------


def test_feed_returns_blocks_as_soon_as_they_are_complete() -> None:
    builder = FileBuilder(chunk_size=10, max_links=2)
    assert builder.feed(b"a" * 9) == []
    assert [b.codec for b in builder.feed(b"b")] == [RAW]  # the chunk filled
    assert [b.codec for b in builder.feed(b"c" * 10)] == [RAW]
    # A third leaf overflows the first level: its node is emitted now, not at finish.
    assert [b.codec for b in builder.feed(b"d" * 10)] == [RAW, DAG_PB]
    root, rest = builder.finish()
    assert [b.codec for b in rest] == [DAG_PB, DAG_PB]
    assert rest[-1].cid == root


def test_feed_accepts_bytearray_memoryview_and_typed_arrays() -> None:
    data = rand_bytes(5000, seed=9)
    want, _ = build(data, 1024, 3)
    reused = bytearray(1000)
    builder = FileBuilder(chunk_size=1024, max_links=3)
    for pos in range(0, 5000, 1000):
        reused[:] = data[pos : pos + 1000]
        builder.feed(reused)  # the buffer is reused at once: the builder must have copied
    assert builder.finish()[0] == want
    words = array.array("I", range(1000))
    builder = FileBuilder(chunk_size=1024, max_links=3)
    builder.feed(memoryview(words))
    assert builder.finish()[0] == build(words.tobytes(), 1024, 3)[0]


def test_builder_refuses_bad_parameters_and_reuse() -> None:
    for kwargs in ({"chunk_size": 0}, {"chunk_size": MAX_CHUNK_SIZE + 1}, {"max_links": 1}):
        with pytest.raises(InvalidInputError):
            FileBuilder(**kwargs)
    builder = FileBuilder()
    builder.finish()
    with pytest.raises(InvalidInputError):
        builder.feed(b"x")
    with pytest.raises(InvalidInputError):
        builder.finish()


def test_defaults_are_the_storage_parameters() -> None:
    assert UNIXFS_PARAMS["chunker"] == f"size-{DEFAULT_CHUNK_SIZE}"
    assert UNIXFS_PARAMS["max-file-links"] == DEFAULT_MAX_LINKS
    assert UNIXFS_PARAMS["cid-version"] == 1 and UNIXFS_PARAMS["raw-leaves"] is True
    assert UNIXFS_PARAMS["layout"] == "balanced"


@st.composite
def split_file(draw: st.DrawFn) -> tuple[bytes, list[int], int, int]:
    chunk = draw(st.sampled_from([1, 3, 64, 1000]))
    max_links = draw(st.sampled_from([2, 3, 7]))
    size = draw(st.integers(0, min(20000, chunk * max_links**3 + 5)))
    data = rand_bytes(size, seed=draw(st.integers(0, 2**16)))
    cuts = sorted(draw(st.lists(st.integers(0, size), max_size=12)))
    return data, cuts, chunk, max_links


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split_file())
def test_any_split_gives_the_same_dag_as_one_feed(case: tuple[bytes, list[int], int, int]) -> None:
    data, cuts, chunk, max_links = case
    want_root, want_blocks = build(data, chunk, max_links)
    builder = FileBuilder(chunk_size=chunk, max_links=max_links)
    blocks: list[Block] = []
    for lo, hi in itertools.pairwise([0, *cuts, len(data)]):
        blocks += builder.feed(data[lo:hi])
    root, rest = builder.finish()
    assert root == want_root
    assert blocks + rest == want_blocks


# --- decoding ---------------------------------------------------------------------------


def internal_nodes() -> Iterator[Block]:
    for chunk, max_links, size in [(100, 3, 3000), (64, 5, 20000), (7, 2, 500)]:
        _, blocks = build(rand_bytes(size, seed=size), chunk, max_links)
        yield from (b for b in blocks if b.codec == DAG_PB)


def test_every_internal_node_round_trips() -> None:
    count = 0
    for block in internal_nodes():
        node = decode_node(block.data)
        assert encode_node(node) == block.data
        assert node.data is not None
        msg = decode_data(node.data)
        assert encode_data(msg) == node.data
        file_node = decode_file_node(block.data)
        assert [link.cid for link in file_node.links] == [link.cid for link in node.links]
        assert [link.size for link in file_node.links] == list(msg.blocksizes)
        assert file_node.filesize == msg.filesize == sum(msg.blocksizes)
        assert file_node.data == b""
        count += 1
    assert count > 100


def assert_format_error_or_ok(decode: Callable[[bytes], object], data: bytes) -> bool:
    """True if ``data`` decoded; False if it raised FormatError; any other error fails."""
    try:
        decode(data)
    except FormatError:
        return False
    return True


def test_truncated_and_mutated_nodes_raise_only_format_error() -> None:
    for i, block in enumerate(itertools.islice(internal_nodes(), 12)):
        data = block.data
        for cut in range(len(data)):
            assert not assert_format_error_or_ok(decode_file_node, data[:cut])
            assert_format_error_or_ok(decode_node, data[:cut])
        rng = random.Random(i)
        for _ in range(300):
            mutated = bytearray(data)
            mutated[rng.randrange(len(data))] = rng.randrange(256)
            assert_format_error_or_ok(decode_file_node, bytes(mutated))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_raises_only_format_error(data: bytes) -> None:
    for decode in (decode_node, decode_data, decode_file_node):
        assert_format_error_or_ok(decode, data)


LEAF = cid_bytes(cid_for(RAW, b"leaf"))
GOOD_LINK = field_bytes(1, LEAF) + field_bytes(2, b"") + field_varint(3, 4)
FILE_DATA = encode_data(UnixFSData(DataType.FILE, None, 4, (4,)))


def test_hand_made_canonical_node_decodes() -> None:
    block = field_bytes(2, GOOD_LINK) + field_bytes(1, FILE_DATA)
    assert decode_node(block) == PBNode((PBLink(LEAF, "", 4),), FILE_DATA)
    node = decode_file_node(block)
    assert node.filesize == 4 and node.links[0].cid == cid_for(RAW, b"leaf")
    # Name and Tsize are optional in dag-pb; absent stays absent on re-encode.
    bare = field_bytes(2, field_bytes(1, LEAF))
    assert decode_node(bare) == PBNode((PBLink(LEAF, None, None),), None)
    assert encode_node(decode_node(bare)) == bare
    assert decode_node(b"") == PBNode()
    # Hashes with multi-byte varints (dag-json, 0x0129) and CIDv0 multihashes are CIDs too.
    digest = bytes(range(32))
    for raw, cid in [
        (
            b"\x01\xa9\x02\x12\x20" + digest,
            "baguqeeraaaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq",
        ),
        (b"\x12\x20" + digest, "bafybeiaaaebagbafaydqqcikbmga2dqpcaireeyuculbogazdinryhi6d4"),
    ]:
        block = field_bytes(2, field_bytes(1, raw))
        assert decode_node(block).links[0].cid == cid == str(parse_cid(cid))
    with pytest.raises(FormatError, match="digest"):
        decode_node(field_bytes(2, field_bytes(1, b"\x01\xa9\x02\x12\x20" + digest[:-1])))


@pytest.mark.parametrize(
    ("block", "why"),
    [
        (field_bytes(1, FILE_DATA) + field_bytes(2, GOOD_LINK), "Links before Data"),
        (field_bytes(1, b"") + field_bytes(1, b""), "Links before Data"),
        (field_bytes(3, b"x"), "field 1 or 2"),
        (field_varint(1, 5), "field 1 or 2"),
        (field_bytes(2, field_bytes(2, b"") + field_bytes(1, LEAF)), "Hash first"),
        (field_bytes(2, field_bytes(1, LEAF) + field_varint(3, 4) + field_bytes(2, b"")), "order"),
        (field_bytes(2, field_bytes(1, LEAF) + field_bytes(1, LEAF)), "in order"),
        (field_bytes(2, field_bytes(2, b"") + field_varint(3, 4)), "Hash first"),
        (field_bytes(2, b""), "expected a PBLink Hash"),
        (field_bytes(2, field_bytes(1, LEAF) + field_bytes(4, b"")), "field 1, 2 or 3"),
        (field_bytes(2, field_bytes(1, LEAF) + field_bytes(3, b"\x04")), "field 1, 2 or 3"),
        (field_bytes(2, field_bytes(1, LEAF[:-1])), "digest"),
        (field_bytes(2, field_bytes(1, b"\x02" + LEAF[1:])), "version 2"),
        (field_bytes(2, field_bytes(1, LEAF) + field_bytes(2, b"\xff")), "UTF-8"),
        (b"\x12\x80\x00", "minimal varint"),
        (field_bytes(2, GOOD_LINK)[:-1], "expected"),
    ],
)
def test_non_canonical_dag_pb_is_refused(block: bytes, why: str) -> None:
    with pytest.raises(FormatError, match=why):
        decode_node(block)


def unixfs_block(data: bytes, links: int = 1) -> bytes:
    return b"".join([field_bytes(2, GOOD_LINK)] * links) + field_bytes(1, data)


@pytest.mark.parametrize(
    ("block", "why"),
    [
        (unixfs_block(field_varint(1, 1)), "found Directory"),
        (unixfs_block(field_varint(1, 5)), "found HAMTShard"),
        (unixfs_block(field_varint(1, 4)), "found Symlink"),
        (unixfs_block(field_varint(1, 9)), "unknown type 9"),
        (unixfs_block(field_varint(1, 2) + field_varint(4, 4) + field_varint(3, 4)), "ascending"),
        (unixfs_block(FILE_DATA + field_varint(7, 0o644)), r"field 7 \(mode\)"),
        (unixfs_block(FILE_DATA + field_bytes(8, b"\x08\x01")), r"field 8 \(mtime\)"),
        (unixfs_block(field_varint(1, 2) + field_varint(1, 2)), "ascending order"),
        (unixfs_block(field_varint(3, 4)), "Type first"),
        (unixfs_block(b""), "expected a UnixFS Type"),
        (unixfs_block(field_varint(1, 2) + field_bytes(4, b"\x04")), "wire 2"),
        (unixfs_block(field_varint(1, 2) + field_varint(9, 1)), "field 1-4"),
        (unixfs_block(FILE_DATA, links=2), "one blocksize per link"),
        (unixfs_block(encode_data(UnixFSData(DataType.FILE, None, 5, (4,)))), "filesize 4"),
        (unixfs_block(encode_data(UnixFSData(DataType.FILE, b"ab", 4, (4,)))), "filesize 6"),
        (field_bytes(2, GOOD_LINK), "Data field"),
    ],
)
def test_malformed_unixfs_is_refused(block: bytes, why: str) -> None:
    with pytest.raises(FormatError, match=why):
        decode_file_node(block)


def test_inline_data_and_raw_type_are_read() -> None:
    """Kubo without raw leaves writes File leaves with inline Data; Raw is the older type."""
    for type_ in (DataType.FILE, DataType.RAW):
        leaf = encode_node(PBNode((), encode_data(UnixFSData(type_, b"hello", 5))))
        node = decode_file_node(leaf)
        assert (node.data, node.filesize, node.links) == (b"hello", 5, ())
        assert plan_read(node, 1, 3).inline == b"ell"
    # Data plus children: the inline bytes come first.
    mixed = unixfs_block(encode_data(UnixFSData(DataType.FILE, b"ab", 6, (4,))))
    plan = plan_read(decode_file_node(mixed), 1, 4)
    assert plan.inline == b"b"
    assert [(c.offset, c.length) for c in plan.children] == [(0, 3)]


# --- ranges -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deep_file() -> tuple[bytes, str, dict[str, Block]]:
    data = rand_bytes(3 * 3 * 3 * 100 * 2 + 17, seed=11)  # depth 4 with chunk 100, 3 links
    root, blocks = build(data, 100, 3)
    return data, root, {b.cid: b for b in blocks}


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 6000), st.integers(0, 6000))
def test_ranges_read_through_the_plan_match_the_data(
    deep_file: tuple[bytes, str, dict[str, Block]], offset: int, length: int
) -> None:
    data, root, store = deep_file
    assert read_range(store, root, offset, length) == data[offset : offset + length]


def test_a_range_reads_only_the_blocks_it_needs(
    deep_file: tuple[bytes, str, dict[str, Block]],
) -> None:
    data, root, store = deep_file
    seen: list[str] = []

    class Spy(dict[str, Block]):
        def __getitem__(self, cid: str) -> Block:
            seen.append(cid)
            return store[cid]

    assert read_range(Spy(), root, 1234, 1) == data[1234:1235]
    assert len(seen) == 5  # root, two inner levels, the node above the leaf, the leaf
    seen.clear()
    assert read_range(Spy(), root, 250, 100) == data[250:350]  # spans two leaves
    assert sum(store[c].codec == RAW for c in seen) == 2


def test_plan_read_clips_and_refuses_negative_ranges(
    deep_file: tuple[bytes, str, dict[str, Block]],
) -> None:
    data, root, store = deep_file
    node = decode_file_node(store[root].data)
    assert plan_read(node, len(data), 10).children == ()
    assert plan_read(node, len(data) + 5, 10).children == ()
    assert plan_read(node, 0, 0).children == ()
    tail = plan_read(node, len(data) - 3, 100)
    assert sum(c.length for c in tail.children) == 3
    for offset, length in ((-1, 1), (0, -1)):
        with pytest.raises(InvalidInputError):
            plan_read(node, offset, length)
