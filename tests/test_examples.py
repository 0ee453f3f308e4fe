"""The examples run against a real Kubo and do what their docstrings say.

Each example's main coroutine is imported and run against the ``kubo`` fixture with the
cheapest KDF (the passphrase cost is not what these test); the aiohttp backend runs as a
real app on 127.0.0.1 under aiohttp's test server and client.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import urllib.error
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import rpc

from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.node import RunningNode

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FAST = KdfParams.fastest()


def load(name: str) -> ModuleType:
    """Import examples/<name>.py (the folder is not a package: users run its files)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def pinned(node: RunningNode, cid: str) -> bool:
    """Whether ``cid`` is pinned on the node in any way (direct, recursive or indirect)."""
    try:
        return bool(rpc(node, "pin/ls", cid).get("Keys"))
    except urllib.error.HTTPError as exc:
        if b"not pinned" in exc.read():
            return False
        raise


async def test_meshkit_share(kubo: RunningNode, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = await load("meshkit_share").main(kubo.api_url, kdf=FAST)
    assert outcome.text.startswith("# Q3 plan")
    assert outcome.save_refused == "download_not_allowed"
    assert outcome.open_after_revoke == "share_revoked"
    out = capsys.readouterr().out
    assert f"capsule {outcome.capsule}" in out
    assert "bob: open refused: share_revoked" in out


async def test_multi_recipient(kubo: RunningNode, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = await load("multi_recipient").main(kubo.api_url, kdf=FAST)
    assert outcome.opened_before == ("bob", "carol", "dave")
    assert sorted(outcome.new_recipients) == ["bob", "dave"]
    assert outcome.opened_after == ("bob", "dave")
    assert outcome.refused == {"new": "recipient_not_authorized", "old": "share_revoked"}
    assert outcome.new_content != outcome.old_content
    # Checked on the node itself: the old ciphertext and capsule are not pinned in any way
    # (a recursive pin on a live capsule would pin the content indirectly), the new are.
    assert outcome.old_unpinned
    assert not pinned(kubo, outcome.old_content)
    assert not pinned(kubo, outcome.old_capsule)
    assert pinned(kubo, outcome.new_content)
    assert pinned(kubo, outcome.new_capsule)
    out = capsys.readouterr().out
    assert f"-> {outcome.new_content}" in out
    assert f"old ciphertext {outcome.old_content} unpinned: True" in out


# -- the aiohttp backend -------------------------------------------------------------------
@pytest.fixture
async def backend(kubo: RunningNode, tmp_path: Path) -> AsyncIterator[TestClient]:
    example = load("aiohttp_backend")
    mesh = await example.demo_mesh(kubo.api_url, tmp_path / "home", ["bob", "carol"], kdf=FAST)
    try:
        async with TestClient(TestServer(example.make_app(mesh), host="127.0.0.1")) as client:
            yield client
    finally:
        await mesh.close()


async def upload(client: TestClient, name: str, data: bytes, media_type: str) -> dict[str, str]:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=media_type)
    resp = await client.post("/files", data=form)
    assert resp.status == 201, await resp.text()
    body: dict[str, str] = await resp.json()
    return body


async def test_backend_upload_share_open_revoke(backend: TestClient) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several upload pieces and envelope chunks
    file = await upload(backend, "scan.png", data, "image/png")
    assert file["size"] == len(data) and file["media_type"] == "image/png"

    resp = await backend.post(
        f"/files/{file['cid']}/shares", json={"to": ["bob"], "expires_in": "7d"}
    )
    assert resp.status == 201, await resp.text()
    capsule = (await resp.json())["capsule"]

    resp = await backend.get(f"/capsules/{capsule}", params={"as": "bob"})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Length"] == str(len(data))
    assert await resp.read() == data

    resp = await backend.get(f"/capsules/{capsule}", params={"as": "carol"})
    assert resp.status == 403
    assert (await resp.json())["error"] == "recipient_not_authorized"

    resp = await backend.delete(f"/capsules/{capsule}")
    assert resp.status == 200
    assert (await resp.json())["revoked"] == [capsule]

    resp = await backend.get(f"/capsules/{capsule}", params={"as": "bob"})
    assert resp.status == 410
    body = await resp.json()
    assert body["error"] == "share_revoked" and body["hint"]


async def test_backend_media_type_from_name_and_view_only(backend: TestClient) -> None:
    file = await upload(backend, "notes.txt", b"plain words\n", "application/octet-stream")
    assert file["media_type"] == "text/plain"
    resp = await backend.post(
        f"/files/{file['cid']}/shares", json={"to": ["bob"], "allow_download": False}
    )
    capsule = (await resp.json())["capsule"]
    resp = await backend.get(f"/capsules/{capsule}", params={"as": "bob"})
    assert resp.headers["Content-Type"] == "text/plain"
    assert resp.headers["Content-Disposition"] == "inline"
    assert await resp.read() == b"plain words\n"


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "code"),
    [
        ("post", "/files/{cid}/shares", {"to": []}, 400, "invalid_input"),
        ("post", "/files/{cid}/shares", {"to": ["bob"], "expires_in": "soon"}, 400, None),
        ("post", "/files/{cid}/shares", {"to": ["nobody"]}, 404, "identity_not_found"),
        ("post", "/files/not-a-cid/shares", {"to": ["bob"]}, 400, "cid_invalid"),
        ("post", "/files/{other}/shares", {"to": ["bob"]}, 404, "not_found"),
        ("get", "/capsules/{capsule}?as=nobody", None, 404, "identity_not_found"),
        ("get", "/capsules/{capsule}", None, 400, "invalid_input"),
        ("get", "/capsules/{cid}?as=bob", None, 400, "format_invalid"),
        ("delete", "/capsules/{other}", None, 404, "not_found"),
        ("post", "/files", {"not": "multipart"}, 400, "invalid_input"),
    ],
)
async def test_backend_errors(
    backend: TestClient,
    method: str,
    path: str,
    payload: object,
    status: int,
    code: str | None,
) -> None:
    file = await upload(backend, "a.txt", b"a", "text/plain")
    resp = await backend.post(f"/files/{file['cid']}/shares", json={"to": ["bob"]})
    capsule = (await resp.json())["capsule"]
    other = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # never put here
    url = path.format(cid=file["cid"], capsule=capsule, other=other)
    resp = await getattr(backend, method)(url, json=payload)
    body = await resp.json()
    assert resp.status == status, json.dumps(body)
    assert code is None or body["error"] == code
    assert body["message"]


def test_meshkit_share_runs_as_a_script(kubo: RunningNode) -> None:
    """The way users run it: its own process, --api, the default (real) KDF cost."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "meshkit_share.py"), "--api", kubo.api_multiaddr],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "bob: save refused: download_not_allowed" in done.stdout
    assert "bob: open refused: share_revoked" in done.stdout


async def test_team_keychain(kubo: RunningNode, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = await load("team_keychain").main(kubo.api_url, kdf=FAST)
    assert outcome.members_before_ban == 3
    assert outcome.read_by_alice == b"carol's note"
    assert outcome.read_by_bob_after_ban == b"after the ban"
    assert outcome.carol_after_ban == "recipient_not_authorized"
    assert outcome.carol_before_ban == b"carol's note"
    assert outcome.dave_opened == b"the plan"
    assert f"alice created keychain {outcome.keychain}" in capsys.readouterr().out
