"""``ipfs-share --cluster ... put --replication / files``, ``cluster ...`` and ``pin remote
...``, run for real: in-process ``main(argv)`` against the session's 3-peer cluster (and
the plain ``kubo`` node for remote pins), the console script where stdin matters, and one
1-peer cluster of its own that the CLI creates, starts and stops."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cluster_fixtures import TestCluster

from ipfs_share.cli.main import main
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.node.daemon import pid_alive
from ipfs_share.services.identities import IdentityService

CLI = Path(sys.executable).with_name("ipfs-share")
PASSPHRASE = "correct horse battery"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with one identity, alice; no cluster or API from the environment."""
    home = tmp_path / "home"
    monkeypatch.setenv("IPFS_SHARE_HOME", str(home))
    monkeypatch.setenv("IPFS_SHARE_PASSPHRASE", PASSPHRASE)
    for var in ("IPFS_SHARE_API", "IPFS_SHARE_CLUSTER", "IPFS_SHARE_CLUSTER_KUBO"):
        monkeypatch.delenv(var, raising=False)
    ids = IdentityService(
        home, None, passphrase=lambda _: PASSPHRASE.encode(), kdf=KdfParams.fastest()
    )
    asyncio.run(ids.create("alice"))
    return home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return Result(code, out, err)


@pytest.fixture
def on_cluster(cluster: TestCluster, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The global options that put the CLI on the session's cluster."""
    monkeypatch.setenv("IPFS_SHARE_CLUSTER_KUBO", ",".join(cluster.kubo))
    return ["--cluster", ",".join(cluster.rest)]


def test_put_with_replication_2_and_files_show_the_two_peers(
    home: Path, on_cluster: list[str], cluster: TestCluster, tmp_path: Path, capsys: Any
) -> None:
    data = tmp_path / "plan.bin"
    data.write_bytes(os.urandom(200_000))
    put = run(capsys, *on_cluster, "put", str(data), "--replication", "2")
    assert put.code == 0, put.err
    cid = put.out.strip()
    assert "pinned on peer" in put.err

    listed = run(capsys, *on_cluster, "files")
    assert listed.code == 0, listed.err
    line = next(line for line in listed.out.splitlines() if line.startswith(cid))
    names = line.split("[pinned on ")[1].rstrip("]").split(", ")
    assert len(names) == 2 and set(names) <= {p.name for p in cluster.peers}

    as_json = run(capsys, *on_cluster, "--json", "files").json()
    (row,) = [f for f in as_json["files"] if f["cid"] == cid]
    statuses = sorted(p["status"] for p in row["placement"]["peers"])
    assert statuses == ["pinned", "pinned", "remote"]

    # Without a cluster, files lists what the home knows and asks no node.
    plain = run(capsys, "files")
    assert plain.code == 0 and cid in plain.out and "pinned on" not in plain.out


def test_replication_without_a_cluster_is_refused_with_a_hint(
    home: Path, kubo: Any, tmp_path: Path, capsys: Any
) -> None:
    data = tmp_path / "x"
    data.write_bytes(b"x")
    got = run(capsys, "--api", kubo.api_url, "put", str(data), "--replication", "2")
    assert got.code == 3
    assert "ipfs-share: hint:" in got.err and "--cluster" in got.err
    bad = run(capsys, "--api", kubo.api_url, "put", str(data), "--replication", "0")
    assert bad.code == 3


def test_the_home_default_replication(
    home: Path, on_cluster: list[str], tmp_path: Path, capsys: Any
) -> None:
    assert run(capsys, "cluster", "replication", "1").code == 0
    assert run(capsys, "--json", "cluster", "replication").json() == {"replication": 1}
    data = tmp_path / "one"
    data.write_bytes(os.urandom(50_000))
    put = run(capsys, *on_cluster, "--json", "put", str(data))
    assert put.code == 0, put.err
    placement = put.json()["placement"]
    assert [p["status"] for p in placement["peers"]].count("pinned") == 1
    assert run(capsys, "cluster", "replication", "--clear").code == 0
    assert run(capsys, "--json", "cluster", "replication").json() == {"replication": None}


def test_cluster_status_and_an_idempotent_up_on_a_running_cluster(
    home: Path, cluster: TestCluster, capsys: Any
) -> None:
    folder = str(cluster.local.folder)
    status = run(capsys, "--json", "cluster", "status", "--dir", folder)
    assert status.code == 0
    doc = status.json()
    assert doc["running"] == 3 and doc["rest"] == cluster.rest and doc["kubo"] == cluster.kubo
    running = [p.service_pid for p in cluster.local.status()]
    up = run(capsys, "--json", "cluster", "up", "--dir", folder)
    assert up.code == 0 and up.json()["created"] is False
    assert [p["service_pid"] for p in up.json()["peers"]] == running  # nothing restarted
    wrong = run(capsys, "cluster", "up", "--dir", folder, "--peers", "5")
    assert wrong.code == 8 and "ipfs-share: hint:" in wrong.err


def test_a_cluster_the_cli_creates_starts_and_stops(
    home: Path, tmp_path: Path, capsys: Any, cluster_binaries: Any, kubo_binary: Path
) -> None:
    folder = str(tmp_path / "mine")
    up = run(capsys, "--json", "cluster", "up", "--peers", "1", "--dir", folder)
    pids: list[int] = []
    try:
        assert up.code == 0, up.err
        (peer,) = up.json()["peers"]
        pids = [peer["service_pid"], peer["kubo_pid"]]
        assert all(pid_alive(p) for p in pids) and peer["responding"]
        assert stat.S_IMODE((Path(folder) / "pinsvc.token").stat().st_mode) == 0o600
        text = run(capsys, "cluster", "status", "--dir", folder).out
        assert text.startswith("1 of 1 peers running")
    finally:
        down = run(capsys, "--json", "cluster", "down", "--dir", folder, "--remove")
    assert down.code == 0
    assert sorted(down.json()["stopped"]) == sorted(pids)
    assert not any(pid_alive(p) for p in pids)
    assert not Path(folder).exists()
    gone = run(capsys, "cluster", "status", "--dir", folder)
    assert "no local cluster" in gone.out


def test_pin_remote_add_ls_put_and_rm(
    home: Path, kubo: Any, cluster: TestCluster, tmp_path: Path, capsys: Any
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(cluster.token + "\n")
    url = cluster.peers[2].pinsvc_url
    added = run(capsys, "pin", "remote", "add", "local", url, "--token-file", str(token_file))
    assert added.code == 0, added.err
    stored = home / "pin-services" / "local.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    listed = run(capsys, "--json", "pin", "remote", "ls").json()
    assert listed == {"services": [{"name": "local", "url": url}]}

    data = tmp_path / "keep.bin"
    data.write_bytes(os.urandom(100_000))
    put = run(capsys, "--api", kubo.api_url, "--json", "put", str(data), "--pin-remote", "local")
    assert put.code == 0, put.err
    doc = put.json()
    assert doc["remote_pin"]["status"] == "pinned"
    pinned = run(capsys, "--json", "pin", "remote", "ls", "local", "--status", "pinned").json()
    assert doc["cid"] in {p["cid"] for p in pinned["pins"]}

    rm = run(capsys, "--json", "pin", "remote", "rm", "local", doc["cid"])
    assert rm.code == 0 and rm.json()["withdrawn"] == {doc["cid"]: 1}
    assert run(capsys, "pin", "remote", "rm", "local").code == 0
    assert not stored.exists()
    unknown = run(capsys, "--api", kubo.api_url, "put", str(data), "--pin-remote", "local")
    assert unknown.code == 6 and "pin remote add" in unknown.err
    assert cluster.token not in capsys.readouterr().out


def test_a_wrong_token_fails_the_remote_pin_but_keeps_the_put(
    home: Path, kubo: Any, cluster: TestCluster, tmp_path: Path
) -> None:
    env = {**os.environ, "IPFS_SHARE_HOME": str(home), "IPFS_SHARE_PASSPHRASE": PASSPHRASE}
    # The token on stdin: never on the command line.
    added = subprocess.run(
        [str(CLI), "pin", "remote", "add", "bad", cluster.peers[0].pinsvc_url],
        input=b"not-a-valid-token\n",
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    data = tmp_path / "f"
    data.write_bytes(os.urandom(10_000))
    put = subprocess.run(
        [str(CLI), "--api", kubo.api_url, "put", str(data), "--pin-remote", "bad"],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    err = put.stderr.decode()
    assert put.returncode == 5
    cid = put.stdout.decode().strip()
    assert cid.startswith("baf")  # the put itself happened, and says so
    assert f"{cid} is stored, but bad did not pin it" in err
    assert "ipfs-share: hint: the service refused the access token" in err
    assert "not-a-valid-token" not in err + put.stdout.decode()
