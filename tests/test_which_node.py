"""Which node a home uses, said out loud: the library and the CLI, on real Kubo.

A home's managed node is found through ``<home>/kubo/api`` (Kubo writes it while the
daemon runs); the tests write that file to point a home at the session's node, as a
running managed node would.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_node import pick_port

from ipfs_share import paths
from ipfs_share.cli.hints import cli_hint
from ipfs_share.cli.main import main
from ipfs_share.client import connect, search_deadlines
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.errors import InvalidInputError, NodeUnreachableError
from ipfs_share.node import RunningNode, discovery
from ipfs_share.node.daemon import KuboDaemon
from ipfs_share.services.identities import IdentityService
from ipfs_share.storage.timed import innermost


def managed_at(home: Path, node: RunningNode) -> Path:
    """``home`` as if its managed node ran at ``node``'s API."""
    repo = paths.kubo_repo_dir(home)
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "api").write_text(node.api_multiaddr)
    return home


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch) -> str:
    """The default address pointed at a port where nothing listens (never 5001 here: a
    developer's own node may be there)."""
    address = f"/ip4/127.0.0.1/tcp/{pick_port()}"
    monkeypatch.setattr(discovery, "DEFAULT_API", address)
    monkeypatch.delenv("IPFS_SHARE_API", raising=False)
    return address


def test_connect_with_a_home_uses_that_homes_managed_node(
    kubo: RunningNode, tmp_path: Path, isolated_home: Path, nowhere: str
) -> None:
    other = managed_at(tmp_path / "other", kubo)  # IPFS_SHARE_HOME is isolated_home, empty

    async def go() -> str:
        async with await connect(home=other) as mesh:
            assert mesh.home == other
            return repr(innermost(mesh.storage))

    assert kubo.api_url in asyncio.run(go())


def test_an_unreachable_node_is_named_with_why_it_was_chosen(
    isolated_home: Path, nowhere: str
) -> None:
    with pytest.raises(NodeUnreachableError) as caught:
        asyncio.run(_connect(isolated_home))
    port = nowhere.rsplit("/", 1)[1]
    assert f"127.0.0.1:{port}" in caught.value.message
    assert f"the default address: {isolated_home} has no managed node" in caught.value.message
    assert caught.value.hint  # in the library's words; the CLI's names the command
    assert "ipfs-share node start" in cli_hint(caught.value)


def test_a_stopped_managed_node_is_said_so(isolated_home: Path, nowhere: str) -> None:
    repo = paths.kubo_repo_dir(isolated_home)
    repo.mkdir(parents=True)
    (repo / "config").write_text("{}")  # a repo exists; no api file: it is not running
    assert not KuboDaemon(repo).running_pid()
    with pytest.raises(NodeUnreachableError, match=r"managed node of .* is not running"):
        asyncio.run(_connect(isolated_home))


def test_the_cli_notes_a_node_that_is_not_the_homes_own(
    kubo: RunningNode,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(discovery, "DEFAULT_API", kubo.api_multiaddr)
    assert main(["files"]) == 0
    err = capsys.readouterr().err
    assert err.count("ipfs-share: using the Kubo node at") == 0  # files needs no node
    src = isolated_home.parent / "a.txt"
    src.write_text("hello")
    monkeypatch.setenv("IPFS_SHARE_PASSPHRASE", "pw")
    ids = IdentityService(isolated_home, None, passphrase=lambda _: b"pw", kdf=KdfParams.fastest())
    asyncio.run(ids.create("alice"))
    code = main(["put", str(src), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    note = f"ipfs-share: using the Kubo node at {kubo.api_url}, the default address"
    assert err.count(note) == 1, err
    assert json.loads(out)["content"]
    # The home's own node, or one named, needs no note.
    managed_at(isolated_home, kubo)
    assert main(["put", str(src)]) == 0
    assert "using the Kubo node" not in capsys.readouterr().err
    assert main(["--api", kubo.api_url, "put", str(src)]) == 0
    assert "using the Kubo node" not in capsys.readouterr().err
    # -q silences the note, not the result.
    (paths.kubo_repo_dir(isolated_home) / "api").unlink()
    assert main(["-q", "put", str(src)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "soon"])
def test_a_bad_timeout_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("IPFS_SHARE_TIMEOUT", bad)
    with pytest.raises(InvalidInputError, match="IPFS_SHARE_TIMEOUT: expected a number"):
        search_deadlines()
    with pytest.raises(InvalidInputError, match="timeout: expected a number"):
        search_deadlines(float(bad) if bad != "soon" else bad)  # type: ignore[arg-type]


def test_the_timeout_reaches_the_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPFS_SHARE_TIMEOUT", "7")
    assert search_deadlines().block == 7 and search_deadlines().record_get == 7
    assert search_deadlines(2.5).block == 2.5  # the argument wins


def test_connect_timeout_sets_the_mesh_deadlines(
    kubo: RunningNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = managed_at(tmp_path / "t", kubo)
    monkeypatch.setenv("IPFS_SHARE_TIMEOUT", "9")

    async def go(timeout: float | None) -> tuple[float, float]:
        async with await connect(home=home, timeout=timeout) as mesh:
            deadlines = mesh.storage.deadlines  # type: ignore[attr-defined]
            return deadlines.block, deadlines.record_get

    assert asyncio.run(go(1.5)) == (1.5, 1.5)
    assert asyncio.run(go(None)) == (9, 9)


async def _connect(home: Path) -> None:
    async with connect(home=home):
        pass
