"""A command pays only for what it uses: what each start-up loads, the Mesh's services made
on first use, and the write-behind that puts open's plaintext on stdout or in a file
(open through a real stdout and the console script's exit: tests/test_cli_share.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ipfs_share.cli._entry import version
from ipfs_share.client import connect
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.errors import IntegrityError
from ipfs_share.node import RunningNode
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.opened import write_behind

FAST = KdfParams.fastest()


def _loaded(code: str, *modules: str) -> list[str]:
    """Which of ``modules`` are in sys.modules after ``code`` runs in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {modules!r} if m in sys.modules))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return eval(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_the_console_script_answers_version_before_the_dispatcher_loads() -> None:
    probe = (
        "import sys, io\n"
        "sys.argv = ['ipfs-share', '--version']\n"
        "import atexit, os\n"
        "from ipfs_share.cli._entry import run\n"
        "os._exit = lambda code: (print(sorted(m for m in ('argparse', 'logging', "
        "'ipfs_share.cli.main', 'ipfs_share.errors') if m in sys.modules), file=sys.stderr), "
        "sys.stderr.flush(), sys.exit(code))\n"
        "run()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == version() + "\n"
    assert done.stderr.strip() == "[]"


def test_help_and_the_dispatcher_load_no_logging_and_no_library() -> None:
    heavy = ("logging", "asyncio", "ipfs_share.client", "aiohttp")
    assert _loaded("import ipfs_share.cli.main", *heavy) == []
    code = "from ipfs_share.cli.main import main\ntry:\n main(['--help'])\nexcept SystemExit: pass"
    assert _loaded(code, *heavy) == []


def test_the_front_door_loads_no_http_client_mailbox_keychain_or_cluster() -> None:
    # What a put needs (state, identities, files) and nothing it does not; the Kubo
    # client comes with the storage, when connect() opens it.
    heavy = (
        "aiohttp",
        "aioipfs",
        "importlib.metadata",
        "ipfs_share.services.keychains",
        "ipfs_share.services.mailbox",
        "ipfs_share.services.remote_pins",
        "ipfs_share.services.revocations",
        "ipfs_share.services.introductions",
        "ipfs_share.storage.cluster",
        "ipfs_share.node.cluster",
        "ipfs_share.node.daemon",
        "urllib.request",
    )
    assert _loaded("import ipfs_share.client", *heavy) == []
    assert _loaded("import ipfs_share.cli.put", *heavy) == []


def _command_loads(home: Path, argv: list[str], *modules: str) -> list[str]:
    """Run the CLI's ``main(argv)`` in a fresh interpreter in ``home``; which of
    ``modules`` it loaded (the command must succeed)."""
    probe = (
        "import sys\n"
        "from ipfs_share.cli.main import main\n"
        f"code = main({argv!r})\n"
        "assert code == 0, code\n"
        f"print(sorted(m for m in {modules!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "IPFS_SHARE_HOME": str(home), "IPFS_SHARE_PASSPHRASE": "pw"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    return eval(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


async def test_a_put_and_an_open_over_plain_http_load_no_aiohttp_or_aioipfs(
    kubo: RunningNode, tmp_path: Path
) -> None:
    # The version check, the file's add, the blocks, the revocation list's record and the
    # cats all go over the keep-alive client: the libraries (about 0.3 CPU-s to import)
    # are left out of the commands' start-up.
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    await IdentityService(alice, None, passphrase=lambda _: b"pw", kdf=FAST).create("alice")
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(1_500_000))  # long enough for the streamed cat
    argv = ["--api", kubo.api_url, "put", str(src)]
    assert _command_loads(alice, argv, "aiohttp", "aioipfs") == []
    async with connect(kubo.api_url, home=bob, passphrase="pw", kdf=FAST) as mesh:
        bob_did = (await mesh.identity.create("bob")).did
        await mesh.identity.publish()
    async with connect(kubo.api_url, home=alice, passphrase="pw", kdf=FAST) as mesh:
        await mesh.identity.resolve(bob_did, petname="bob")
        (put,) = mesh.files.list()
        capsule = (await mesh.share.file(put.cid).with_("bob")).id
    out = tmp_path / "out.bin"
    argv = ["--api", kubo.api_url, "open", capsule, "-o", str(out)]
    assert _command_loads(bob, argv, "aiohttp", "aioipfs") == []
    assert out.read_bytes() == src.read_bytes()


def test_decoding_a_block_with_a_link_loads_none_of_cbor2s_deferred_encoders() -> None:
    # The decoder's canonical re-encoding finds links in its own table; a type in no
    # table makes cbor2 import the modules of its deferred encoders (about 50 ms).
    code = (
        "from ipfs_share.formats import dagcbor\n"
        "from ipfs_share.formats.cid import RAW, cid_for\n"
        "data = dagcbor.encode({'a': dagcbor.Link(cid_for(RAW, b'x')), 'b': [1.5]})\n"
        "assert dagcbor.decode(data) == {'a': dagcbor.Link(cid_for(RAW, b'x')), 'b': [1.5]}\n"
    )
    assert _loaded(code, "email", "decimal", "uuid", "fractions") == []


def test_every_name_of_the_node_package_is_there_when_asked_for() -> None:
    import ipfs_share.node as node

    assert all(callable(getattr(node, name)) or name.isupper() for name in node.__all__)
    assert set(node.__all__) <= set(dir(node))
    with pytest.raises(AttributeError):
        _ = node.no_such_name  # type: ignore[attr-defined]


async def test_services_are_made_on_first_use_once_and_wired_together(tmp_path: Path) -> None:
    home = tmp_path / "home"
    async with connect(home=home, embedded=tmp_path / "store", passphrase="pw", kdf=FAST) as mesh:
        assert {"keychains", "share", "inbox", "revocations", "introductions"}.isdisjoint(
            vars(mesh)
        )
        alice = await mesh.identity.create("alice")
        put = await mesh.files.put("a.txt", b"hello", as_=alice.did)
        assert "keychains" not in vars(mesh)  # a put without a keychain made none
        # The same objects however they are reached, wired as before.
        assert mesh.files.keychains is mesh.keychains
        assert mesh.inbox is mesh.share.mailbox
        assert mesh.keychains.notifier is not None
        assert mesh.keychains.notifier.mailbox is mesh.inbox  # type: ignore[attr-defined]
        assert mesh.share.revocations is mesh.revocations
        assert mesh.share.files is mesh.files
        capsule = await mesh.share.file(put.cid).with_([alice.did])
        assert await (await mesh.share.open_capsule(capsule.id)).read() == b"hello"
        assert mesh.introductions.pending() == []
    # close() closed what was made (the introductions' database among it).


async def test_write_behind_keeps_order_and_lets_the_write_in_flight_end_on_an_error() -> None:
    written: list[bytes] = []
    threads: set[str] = set()

    def slow_write(piece: bytes | bytearray) -> None:
        threads.add(threading.current_thread().name)
        time.sleep(0.05)
        written.append(bytes(piece))

    async def pieces(fail_after: int | None) -> AsyncIterator[bytes]:
        for i in range(4):
            if fail_after is not None and i == fail_after:
                raise IntegrityError("chunk 2 failed its check")
            yield bytes([i]) * 10

    seen: list[int] = []
    assert await write_behind(pieces(None), slow_write, seen.append) == 40
    assert written == [bytes([i]) * 10 for i in range(4)] and seen == [10, 20, 30, 40]
    assert threading.current_thread().name not in threads  # written off the event loop

    written.clear()
    with pytest.raises(IntegrityError):
        await write_behind(pieces(2), slow_write)
    assert written == [b"\0" * 10, b"\1" * 10]  # the piece in flight was written, no more


async def test_a_cancelled_write_behind_returns_only_once_its_write_has_ended() -> None:
    # The caller closes (or unlinks) what the writes go to as soon as it gets control
    # back: the thread must be done with it by then, cancelled or not.
    started, ended = threading.Event(), threading.Event()

    def slow_write(piece: bytes | bytearray) -> None:
        started.set()
        time.sleep(0.3)
        ended.set()

    async def pieces() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.sleep(10)  # the next piece takes long: the caller gives up
        yield b"second"

    task = asyncio.ensure_future(write_behind(pieces(), slow_write))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended.is_set()  # the write in flight ended before the cancellation went up

    started.clear(), ended.clear()

    async def quick() -> AsyncIterator[bytes]:
        yield b"first"
        yield b"second"  # the loop then waits on the first write: cancelled there

    task = asyncio.ensure_future(write_behind(quick(), slow_write))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended.is_set()
