"""The CLI where it used to fall through: names a peer controls, ``-o`` into a missing
folder, ``--api`` at a server that is not Kubo, leaked connections, a node that appends
bytes, and an open of a capsule that does not exist. All against the real test node (and
real servers in front of it or beside it).
"""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_cli_share
from test_cli_share import CLI, PASSPHRASE, Cli, People, put, share

from ipfs_share.node import RunningNode

# The share tests' fixtures: a CLI runner on the test node, and alice, bob and carol.
cli = test_cli_share.cli
people = test_cli_share.people

EVIL = "evil\x1b]0;pwned\x07\x1b[2J\nsecond line\u202e.txt"
SHOWN = "evil\\x1b]0;pwned\\x07\\x1b[2J\\nsecond line\\u202e.txt"


def test_names_with_control_characters_are_escaped(
    cli: Cli, people: People, tmp_path: Path
) -> None:
    src = tmp_path / EVIL
    src.write_text("the content\n")
    put_line = cli.ok(people.alice, "put", str(src), "-v").err
    assert "\x1b" not in put_line
    cid = put(cli, people.alice, src)
    listed = cli.ok(people.alice, "files").text
    row = [line for line in listed.splitlines() if line.startswith(cid)]
    assert len(row) == 1 and row[0].endswith(SHOWN), listed  # one line, escaped
    capsule = share(cli, people.alice, cid, "--to", "bob")
    opened = cli.ok(people.bob, "open", capsule)
    assert opened.out == b"the content\n"  # the plaintext itself is not altered
    assert f"opening {SHOWN}, shared by" in opened.err
    saved = cli.ok(people.bob, "open", capsule, "-o", str(tmp_path / "out.txt"))
    assert f"saved {SHOWN} (12 bytes)" in saved.text
    assert (
        cli.ok(people.bob, "open", capsule, "-o", str(tmp_path / "o.txt"), "--json").json()["name"]
        == EVIL
    )  # JSON carries the name as it is (escaped by JSON itself)
    for control in ("\x1b", "\x07", "\u202e"):
        assert control not in cli.seen.replace(json.dumps(EVIL)[1:-1], "")


@pytest.mark.parametrize("where", ["missing/out.txt", "newdir/", "."])
def test_open_into_a_missing_folder_is_an_error(
    cli: Cli, people: People, tmp_path: Path, where: str
) -> None:
    src = tmp_path / "a.txt"
    src.write_text("x")
    capsule = share(cli, people.alice, put(cli, people.alice, src), "--to", "bob")
    target = str(tmp_path / where) + ("/" if where.endswith("/") else "")
    got = cli(people.bob, "--json", "open", capsule, "-o", target)
    assert got.code == 2
    assert got.json()["error"]["message"].startswith("argument -o/--output: expected ")
    assert "Traceback" not in got.err
    assert not (tmp_path / "missing").exists() and not (tmp_path / "newdir").exists()


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[type[http.server.BaseHTTPRequestHandler]], str]]:
    """Run a real HTTP server on loopback with the given handler; its URL."""
    servers: list[socketserver.TCPServer] = []

    def start(handler: type[http.server.BaseHTTPRequestHandler]) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


PAGE = b"<!doctype html><html><head><title>Router login</title></head><body>hi</body></html>"


class _Html(_Quiet):
    status = 200

    def do_POST(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)


class _Html405(_Html):
    status = 405


@pytest.mark.parametrize("handler", [_Html, _Html405])
def test_an_api_that_is_not_kubo_says_so(
    cli: Cli, people: People, serve: Any, handler: Any
) -> None:
    url = serve(handler)
    got = cli(people.alice, "--api", url, "--json", "files", "list")
    assert got.code == 0  # files needs no node
    got = cli(people.alice, "--api", url, "--json", "identity", "publish")
    error = got.json()["error"]
    assert got.code == 5, got.err
    assert f"the server at {url} is not a Kubo RPC API" in error["message"]
    assert "port 5001" in error["hint"]
    assert "<html" not in got.err.lower() and "router login" not in got.text.lower()


def _console(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IPFS_SHARE_HOME": str(home), "IPFS_SHARE_PASSPHRASE": PASSPHRASE}
    env.pop("IPFS_SHARE_API", None)
    return subprocess.run(
        [str(CLI), *argv], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_no_unclosed_connector_reaches_stderr(
    cli: Cli, people: People, kubo: RunningNode, tmp_path: Path, serve: Any
) -> None:
    src = tmp_path / "u.txt"
    src.write_text("unclosed?")
    cid = put(cli, people.alice, src)
    capsule = share(cli, people.alice, cid, "--to", "bob")
    api = ["--api", kubo.api_url]
    runs = [
        _console(people.alice, *api, "put", str(src)),
        _console(people.bob, *api, "open", capsule),
        _console(people.bob, *api, "open", capsule, "-o", str(tmp_path / "o")),
        _console(people.alice, *api, "shares"),
        _console(people.bob, *api, "inbox"),
        _console(people.bob, "--api", "http://127.0.0.1:9", "open", capsule),
        _console(people.bob, "--api", serve(_Html), "open", capsule),
        _console(people.bob, *api, "--timeout", "1", "open", "bafkqaaa" + "a" * 20),
    ]
    # A home that fails after the node answered (its state database is gone).
    (people.carol / "state.sqlite3").unlink()
    runs.append(_console(people.carol, *api, "open", capsule))
    assert runs[-1].returncode == 9, runs[-1].stderr
    for done in runs:
        assert "Unclosed" not in done.stderr, (done.args, done.stderr)
        assert "Traceback" not in done.stderr, (done.args, done.stderr)
    assert [r.returncode for r in runs[:4]] == [0, 0, 0, 0], [r.stderr for r in runs]


def _proxy(upstream: str, append: bytes) -> type[http.server.BaseHTTPRequestHandler]:
    """A node that forwards every call to the real one and appends bytes to cat."""

    class Appending(_Quiet):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = urllib.request.Request(
                upstream + self.path, data=body, method="POST", headers=dict(self.headers)
            )
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open(request, timeout=30) as answer:
                    status, headers, data = answer.status, answer.headers, answer.read()
            except urllib.error.HTTPError as exc:
                status, headers, data = exc.code, exc.headers, exc.read()
            if self.path.startswith("/api/v0/cat?") and status == 200:
                data += append
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Appending


@pytest.mark.parametrize("size", [300_000, 3_000_000])  # the short and the long cat path
def test_bytes_a_node_appends_to_cat_are_an_integrity_error(
    cli: Cli, people: People, kubo: RunningNode, tmp_path: Path, serve: Any, size: int
) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(size))
    capsule = share(cli, people.alice, put(cli, people.alice, src), "--to", "bob")
    liar = serve(_proxy(kubo.api_url, b"\0" * 77))
    cli.api = liar
    got = cli(people.bob, "--json", "open", capsule, "-o", str(tmp_path / "out.bin"))
    assert got.code == 7, got.err
    assert got.json()["error"]["code"] in ("integrity_error", "stream_truncated")
    assert "IndexError" not in got.err and not (tmp_path / "out.bin").exists()


MISSING = "bafyreigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"  # a capsule nobody has


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_open_of_a_missing_capsule_says_it_searches_and_waits_as_told(
    cli: Cli, people: People, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    argv = ["--timeout", "3"] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv("IPFS_SHARE_TIMEOUT", "3")
    started = time.monotonic()
    got = cli(people.bob, *argv, "--json", "open", MISSING, "-o", "/tmp/never-written")
    took = time.monotonic() - started
    assert 3 <= took < 15, took  # the default would be 20 s
    assert f"ipfs-share: searching the network for capsule {MISSING} (up to 3 s" in got.err
    error = got.json()["error"]
    assert got.code == 5 and error["code"] == "node_timeout"
    assert error["message"].startswith(f"could not find {MISSING} in time")
    assert "--timeout" in error["hint"]
