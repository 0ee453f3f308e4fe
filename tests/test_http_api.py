"""The HTTP API (``ipfs-share serve``'s TCP face) driven by a real HTTP client against real
agents and a real Kubo: the token (a 401 changes nothing), CORS, the whole share flow over
HTTP with the capsule arriving as a Server-Sent Event, Range reads that fetch only the
chunks they need (counted by a real proxy in front of Kubo), the status of every error
code, the OpenAPI document against the routes (both ways) and a real validator, and the
README's tables against the one status table.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from agentkit import Person, person, running_agent, tcp_api
from aiohttp import web

from ipfs_share.agent.core import Agent
from ipfs_share.agent.files import read_token, token_path
from ipfs_share.errors import IpfsShareError, error_class
from ipfs_share.http import app as app_module
from ipfs_share.http.api import make_api
from ipfs_share.http.openapi import document, unix_only
from ipfs_share.node.daemon import RunningNode
from ipfs_share.node.ports import free_port
from ipfs_share.status import EXIT_CODES, HTTP_STATUS, TABLE, status_of

ROOT = Path(__file__).resolve().parent.parent
LIMIT = aiohttp.ClientTimeout(total=90)  # a request that hangs fails the test, with its name


@pytest.fixture
async def homes(kubo: RunningNode, tmp_path: Path) -> AsyncIterator[tuple[Person, Person]]:
    """alice and bob, each a home with a published identity; the agents take them over."""
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    await alice.mesh.close()
    await bob.mesh.close()
    yield alice, bob


def auth(home: Path) -> dict[str, str]:
    token = read_token(home)
    assert token is not None
    return {"Authorization": f"Bearer {token}"}


async def kubo_pins(api: str) -> set[str]:
    async with (
        aiohttp.ClientSession(timeout=LIMIT) as http,
        http.post(f"{api}/api/v0/pin/ls", params={"type": "recursive"}) as r,
    ):
        return set((await r.json())["Keys"])


async def sse(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], want: str, timeout: float
) -> dict[str, Any]:
    """Read the event stream until an event of type ``want``; that event."""
    async with http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("event: "):
                event["type"] = line[7:]
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])
            elif line == "" and event:
                if event.get("type") == want:
                    return event
                event = {}
    raise AssertionError(f"the stream ended before a {want} event")


# -- the token and CORS --------------------------------------------------------------------


async def test_without_the_token_a_request_gets_401_and_changes_nothing(
    kubo: RunningNode, homes: tuple[Person, Person]
) -> None:
    alice, bob = homes
    async with running_agent(alice.home, kubo.api_url) as agent, tcp_api(agent) as base:
        mode = stat.S_IMODE(os.stat(token_path(alice.home)).st_mode)
        assert mode == 0o600
        token = read_token(alice.home)
        assert token is not None and len(token) == 64
        wrong = token[:-1] + ("0" if token[-1] != "0" else "1")  # same length, one off
        pins = await kubo_pins(kubo.api_url)
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": f"Bearer {wrong}"}, {"Authorization": token}):
                async with http.post(
                    f"{base}/v1/files", params={"name": "x.txt"}, data=b"secret", headers=headers
                ) as r:
                    assert r.status == 401, await r.text()
                    assert (await r.json())["error"]["code"] == "unauthorized"
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
                async with http.put(
                    f"{base}/v1/contacts/bob", json={"did": bob.did}, headers=headers
                ) as r:
                    assert r.status == 401
            assert agent.mesh.files.list() == [] and agent.mesh.db.contacts.list() == []
            assert await kubo_pins(kubo.api_url) == pins  # no pin, no row
            # The same requests with the token do what they say (so the check above could fail).
            async with http.post(
                f"{base}/v1/files",
                params={"name": "x.txt"},
                data=b"secret",
                headers=auth(alice.home),
            ) as r:
                assert r.status == 201, await r.text()
                cid = (await r.json())["content"]
            assert cid in await kubo_pins(kubo.api_url)
            assert [f.cid for f in agent.mesh.files.list()] == [cid]


async def test_cors_is_off_unless_origins_are_named(
    kubo: RunningNode, homes: tuple[Person, Person]
) -> None:
    alice, _ = homes
    page = "https://app.example"
    preflight = {"Origin": page, "Access-Control-Request-Method": "POST"}
    async with running_agent(alice.home, kubo.api_url) as agent:
        async with tcp_api(agent) as base, aiohttp.ClientSession() as http:
            async with http.get(
                f"{base}/v1/agent", headers={"Origin": page, **auth(alice.home)}
            ) as r:
                assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
            async with http.options(f"{base}/v1/files", headers=preflight) as r:
                assert r.status != 204 and "Access-Control-Allow-Origin" not in r.headers
        async with tcp_api(agent, cors=(page,)) as base, aiohttp.ClientSession() as http:
            async with http.options(f"{base}/v1/files", headers=preflight) as r:
                assert r.status == 204
                assert r.headers["Access-Control-Allow-Origin"] == page
                assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
            other = {**preflight, "Origin": "https://evil.example"}
            async with http.options(f"{base}/v1/files", headers=other) as r:
                assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
            async with http.get(f"{base}/v1/agent", headers={"Origin": page}) as r:
                assert r.status == 401  # CORS lets the page in; the token is still needed
                assert r.headers["Access-Control-Allow-Origin"] == page
            async with http.get(
                f"{base}/v1/agent", headers={"Origin": page, **auth(alice.home)}
            ) as r:
                assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == page
                assert "X-Ipfs-Share-Size" in r.headers["Access-Control-Expose-Headers"]


# -- the share flow over HTTP --------------------------------------------------------------


async def test_alice_puts_and_shares_over_http_and_bob_gets_the_event_and_opens(
    kubo: RunningNode, homes: tuple[Person, Person]
) -> None:
    alice, bob = homes
    data = os.urandom(300_000)
    async with (
        running_agent(alice.home, kubo.api_url) as a_agent,
        running_agent(bob.home, kubo.api_url) as b_agent,
        tcp_api(a_agent) as a,
        tcp_api(b_agent) as b,
        aiohttp.ClientSession(timeout=LIMIT) as http,
    ):
        ah, bh = auth(alice.home), auth(bob.home)
        async with http.put(f"{a}/v1/contacts/bob", json={"did": bob.did}, headers=ah) as r:
            assert r.status == 200, await r.text()
        async with http.put(f"{b}/v1/contacts/alice", json={"did": alice.did}, headers=bh) as r:
            assert r.status == 200

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked, spooled
            for i in range(0, len(data), 50_000):
                yield data[i : i + 50_000]

        async with http.post(
            f"{a}/v1/files",
            params={"name": "report.bin"},
            data=chunks(),
            headers={**ah, "Content-Type": "application/x-report"},
        ) as r:
            assert r.status == 201, await r.text()
            put = await r.json()
        assert put["size"] == len(data) and put["media_type"] == "application/x-report"
        async with http.get(f"{a}/v1/files/{put['content']}/plaintext", headers=ah) as r:
            assert r.status == 200 and await r.read() == data  # the owner's own copy

        since = b_agent.bus.last_id
        waiting = asyncio.ensure_future(
            sse(http, f"{b}/v1/events", {**bh, "Last-Event-ID": str(since)}, "capsule_received", 60)
        )
        body = {"content": put["content"], "to": ["bob"], "send": True, "allow_download": False}
        async with http.post(f"{a}/v1/shares", json=body, headers=ah) as r:
            assert r.status == 201, await r.text()
            capsule = (await r.json())["capsule"]
        event = await waiting
        assert event["data"]["capsule"] == capsule and event["id"] > since

        url = f"{b}/v1/capsules/{capsule}/plaintext"
        async with http.get(url, headers=bh) as r:
            assert r.status == 200 and await r.read() == data
            assert r.headers["Content-Type"] == "application/x-report"
            assert r.headers["Content-Length"] == str(len(data))
            assert r.headers["X-Ipfs-Share-Allow-Download"] == "false"
            assert r.headers["Content-Disposition"] == "inline"
            assert r.headers["X-Ipfs-Share-Issuer"] == alice.did
        async with http.get(url, headers={**bh, "Range": "bytes=100000-100099"}) as r:
            assert r.status == 206 and await r.read() == data[100000:100100]
            assert r.headers["Content-Range"] == f"bytes 100000-100099/{len(data)}"
        async with http.get(url, headers={**bh, "Range": "bytes=-10"}) as r:
            assert r.status == 206 and await r.read() == data[-10:]
        async with http.get(url, headers={**bh, "Range": f"bytes={len(data)}-"}) as r:
            assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"
            assert (await r.json())["error"]["code"] == "range_not_satisfiable"
        async with http.get(url, params={"save": "1"}, headers=bh) as r:
            assert r.status == 403  # view-only: not for keeping
            assert (await r.json())["error"]["code"] == "download_not_allowed"

        b_agent.keys.lock("bob")  # the agent holds bob's keys no longer
        async with http.get(url, headers=bh) as r:
            assert r.status == 423
            error = (await r.json())["error"]
            assert error["code"] == "identity_locked" and "ipfs-share unlock" in error["hint"]

        dry = {"dry_run": True, "rotate": True}
        async with http.post(f"{a}/v1/shares/{capsule}/revoke", json=dry, headers=ah) as r:
            assert r.status == 200 and (await r.json())["revoke"] == [capsule]
        assert a_agent.mesh.share.get(capsule).state == "active"  # a dry run changes nothing
        async with http.post(f"{a}/v1/shares/{capsule}/revoke", json={}, headers=ah) as r:
            assert r.status == 200, await r.text()
        await b_agent.keys.unlock("bob", b"pw", None)
        await asyncio.sleep(b_agent.options.revocation_fresh_for)  # the agent's stated bound
        async with http.get(url, headers=bh) as r:
            assert r.status == 410 and (await r.json())["error"]["code"] == "share_revoked"
        async with http.get(f"{a}/v1/outgoing", headers=ah) as r:
            assert r.status == 200 and (await r.json())["outgoing"]


async def test_identities_contacts_files_and_shares_over_http(
    kubo: RunningNode, homes: tuple[Person, Person]
) -> None:
    alice, bob = homes
    async with (
        running_agent(alice.home, kubo.api_url) as agent,
        tcp_api(agent) as base,
        aiohttp.ClientSession(timeout=LIMIT) as http,
    ):
        h = auth(alice.home)

        async def call(method: str, path: str, status: int, **kw: Any) -> Any:
            async with http.request(
                method, base + path, headers={**h, **kw.pop("headers", {})}, **kw
            ) as r:
                text = await r.text()
                assert r.status == status, (method, path, text)
                return json.loads(text)

        ids = await call("GET", "/v1/identities", 200)
        assert [(i["name"], i["unlocked"]) for i in ids["identities"]] == [("alice", True)]
        refused = await call("POST", "/v1/identities", 400, json={"name": "svc"})
        assert "sealed" in refused["error"]["message"]  # no passphrase over TCP
        made = await call("POST", "/v1/identities", 201, json={"name": "svc", "sealed": False})
        assert made["encrypted"] is False and made["unlocked"] is True
        await call("POST", "/v1/identities", 409, json={"name": "svc", "sealed": False})
        published = await call("POST", "/v1/identities/svc/publish", 200)
        assert published["did"] == made["did"]
        found = await call("POST", "/v1/resolve", 200, json={"did": bob.did, "petname": "bob"})
        assert found["did"] == bob.did
        contacts = await call("GET", "/v1/contacts", 200)
        assert [(c["petname"], c["did"]) for c in contacts["contacts"]] == [("bob", bob.did)]
        await call("PUT", "/v1/contacts/robert", 200, json={"did": bob.did})
        await call("DELETE", "/v1/contacts/robert", 200)
        await call("DELETE", "/v1/contacts/robert", 404)

        put = await call(
            "POST",
            "/v1/files",
            201,
            params={"name": "a.txt"},
            data=b"hello",
            headers={"X-Ipfs-Share-As": "svc"},
        )
        assert put["owner"] == made["did"] and put["media_type"] == "text/plain"
        mine = await call("GET", "/v1/files", 200, headers={"X-Ipfs-Share-As": "svc"})
        assert [f["content"] for f in mine["files"]] == [put["content"]]
        assert (await call("GET", f"/v1/files/{put['content']}", 200))["size"] == 5
        where = await call("GET", f"/v1/files/{put['content']}/placement", 200)
        assert where == {"content": put["content"], "placement": None}  # one node, not a cluster
        share = await call(
            "POST",
            "/v1/shares",
            201,
            json={"content": put["content"], "to": ["bob"], "expires_in": 3600},
            params={"as": "svc"},
        )
        shown = await call("GET", f"/v1/shares/{share['capsule']}", 200)
        assert shown["issuer"] == made["did"] and shown["opens"] == [] and shown["expires"]
        listed = await call("GET", "/v1/shares", 200, params={"content": put["content"]})
        assert [s["capsule"] for s in listed["shares"]] == [share["capsule"]]
        assert (await call("GET", "/v1/shares", 200, headers={"X-Ipfs-Share-As": "alice"}))[
            "shares"
        ] == []
        sent = await call("POST", f"/v1/shares/{share['capsule']}/send", 200, params={"as": "svc"})
        assert [o["recipient"] for o in sent["sent"]] == [bob.did]  # bob's agent is not up
        cancelled = await call("POST", f"/v1/outgoing/{share['capsule']}/cancel", 200)
        assert [o["capsule"] for o in cancelled["cancelled"]] == [share["capsule"]]
        assert agent.mesh.share.get(share["capsule"]).state == "revoked"  # a cancel revokes
        assert (await call("POST", "/v1/agent/republish", 200))["started"] is True
        await call("DELETE", f"/v1/files/{put['content']}", 200)
        await call("DELETE", f"/v1/files/{put['content']}", 404)
        assert (await call("GET", "/v1/inbox", 200))["inbox"] == []  # the first stays default
        inbox = await call("GET", "/v1/inbox", 200, params={"as": "alice"})
        assert inbox == {"inbox": [], "introductions": []}

        await call(
            "GET", "/v1/files", 404, headers={"X-Ipfs-Share-As": "nobody"}
        )  # identity_not_found
        bad = await call(
            "POST",
            "/v1/shares",
            400,
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert bad["error"]["code"] == "invalid_input"
        assert (await call("GET", "/v1/files/not-a-cid", 400))["error"]["code"] == "cid_invalid"
        assert (await call("GET", "/v1/nothing-here", 404))["error"]["code"] == "not_found"
        await call("POST", "/v1/files", 400, data=b"x")  # no name


@pytest.fixture
async def counting_proxy(kubo: RunningNode) -> AsyncIterator[dict[str, Any]]:
    """A real proxy in front of the test node that counts the bytes it answers to reads
    (`cat`, `block/get`, `dag/get`)."""
    counts: dict[str, Any] = {"cat_bytes": 0, "url": ""}
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with session.request(
            request.method,
            kubo.api_url + request.path_qs,
            data=body,
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        ) as upstream:
            data = await upstream.read()
            if request.path in ("/api/v0/cat", "/api/v0/block/get", "/api/v0/dag/get"):
                counts["cat_bytes"] += len(data)
            headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "trailer")
            }
            return web.Response(body=data, status=upstream.status, headers=headers)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    counts["url"] = f"http://127.0.0.1:{port}"
    try:
        yield counts
    finally:
        await runner.cleanup()
        await session.close()


async def test_a_range_read_fetches_only_the_chunks_it_needs(
    kubo: RunningNode, tmp_path: Path, counting_proxy: dict[str, Any]
) -> None:
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    await alice.mesh.close()
    data = os.urandom(8 << 20)
    async with (
        running_agent(alice.home, counting_proxy["url"]) as agent,
        tcp_api(agent) as base,
        aiohttp.ClientSession(timeout=LIMIT) as http,
    ):
        h = auth(alice.home)
        async with http.post(f"{base}/v1/files", params={"name": "big"}, data=data, headers=h) as r:
            assert r.status == 201, await r.text()
            cid = (await r.json())["content"]
        url = f"{base}/v1/files/{cid}/plaintext"
        before = counting_proxy["cat_bytes"]
        async with http.get(url, headers={**h, "Range": "bytes=5000000-5000099"}) as r:
            assert r.status == 206 and await r.read() == data[5000000:5000100]
        fetched = counting_proxy["cat_bytes"] - before
        # Of 8 MiB: the leaf holding the header and the leaf holding the range (the node's
        # leaves are 256 KiB, each fetched whole to check its hash), and the root's links.
        assert 0 < fetched <= 2 * 256 * 1024 + 64 * 1024, fetched
        before = counting_proxy["cat_bytes"]
        async with http.get(url, headers=h) as r:
            assert await r.read() == data
        assert counting_proxy["cat_bytes"] - before > len(data)  # the whole, for contrast


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("row", TABLE, ids=lambda s: s.code)
async def test_every_error_code_gets_its_status_and_body(
    row: Any, aiohttp_client_factory: Any
) -> None:
    cls = error_class(row.code)
    assert cls.code == row.code, f"{row.code} is not the code of any error class"

    async def boom(request: web.Request) -> web.Response:
        raise cls("it failed", hint="do this")

    app = web.Application(middlewares=[app_module._errors])
    app.router.add_get("/boom", boom)
    async with (
        aiohttp_client_factory(app) as base,
        aiohttp.ClientSession(timeout=LIMIT) as http,
        http.get(f"{base}/boom") as r,
    ):
        assert r.status == row.http
        assert await r.json() == {
            "error": {"code": row.code, "message": "it failed", "hint": "do this"}
        }


@pytest.fixture
def aiohttp_client_factory() -> Any:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def serve(app: web.Application) -> AsyncIterator[str]:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()

    return serve


def test_every_error_class_lands_in_a_row_and_the_two_faces_agree() -> None:
    from ipfs_share import errors
    from ipfs_share.cli.main import EXIT_CODES as CLI_EXIT_CODES
    from ipfs_share.cli.main import exit_code_for
    from ipfs_share.http.errors import status_for

    assert CLI_EXIT_CODES is EXIT_CODES  # derived, not copied
    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, IpfsShareError):
            row = status_of(cls("x"))
            assert exit_code_for(cls("x")) == row.exit and status_for(cls("x")) == row.http
            if cls.code not in ("ipfs_share_error", "share_error"):
                assert row.code != "ipfs_share_error", f"{name} falls through to the root"


def test_readme_http_status_table_matches_the_status_table() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### HTTP statuses", 1)[1].split("\n#", 1)[0]
    documented: dict[str, int] = {}
    for line in section.splitlines():
        m = re.match(r"^\|\s*(\d{3})\s*\|(.*)\|(.*)\|\s*$", line)
        if m:
            for code in re.findall(r"`([a-z_]+)`", m[3]):
                documented[code] = int(m[1])
    assert documented == HTTP_STATUS


# -- the contract --------------------------------------------------------------------------


def _routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if route.method != "HEAD" and path:
            found.add((route.method.lower(), path))
    return found


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m, p) for p, ops in doc["paths"].items() for m in ops}


def test_the_openapi_document_matches_the_routes_both_ways(tmp_path: Path) -> None:
    agent = Agent(tmp_path, "http://127.0.0.1:1")  # built, never started: only its routes
    doc = document()
    on_socket = _routes(make_api(agent, unix=True))
    on_tcp = _routes(make_api(agent, token="t"))
    assert on_socket - _documented(doc) == set(), "routes the document does not have"
    assert _documented(doc) - on_socket == set(), "documented paths with no route"
    assert on_socket - on_tcp == unix_only()  # the passphrase routes exist on the socket only
    committed = json.loads((ROOT / "docs/openapi.json").read_text())
    assert committed == doc, "docs/openapi.json is stale: python -m ipfs_share.http.openapi"


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    doc = document()
    validate(doc)  # type: ignore[arg-type]
    broken = json.loads(json.dumps(doc))
    broken["paths"]["/v1/files"]["post"]["responses"]["201"] = {"content": 3}
    with pytest.raises(OpenAPIValidationError):  # the validator does refuse a bad one
        validate(broken)  # type: ignore[arg-type]


async def test_openapi_json_is_served(kubo: RunningNode, homes: tuple[Person, Person]) -> None:
    alice, _ = homes
    async with (
        running_agent(alice.home, kubo.api_url) as agent,
        tcp_api(agent) as base,
        aiohttp.ClientSession(timeout=LIMIT) as http,
    ):
        async with http.get(f"{base}/openapi.json", headers=auth(alice.home)) as r:
            assert r.status == 200 and await r.json() == document()
        async with http.get(f"{base}/v1/agent", headers=auth(alice.home)) as r:
            status = await r.json()
            assert status["running"] is True and "http" in status


def test_an_event_id_from_before_a_restart_says_missed() -> None:
    """Ids start again at 1 when the agent restarts: a reader resuming from a larger id
    than the bus has is told to resync (and gets what the new run has), not left waiting."""
    from ipfs_share.agent.events import EventBus

    bus = EventBus()
    bus.publish("node", {"up": True})
    events, missed = bus.since(500)
    assert missed and [e.id for e in events] == [1]
    assert bus.since(1) == ([], False)


async def test_a_sealed_identity_is_made_on_the_home_socket_only(
    kubo: RunningNode, homes: tuple[Person, Person]
) -> None:
    import base64

    from ipfs_share.agent.files import socket_path

    alice, _ = homes
    body = {"name": "vault", "passphrase_b64": base64.b64encode(b"a long passphrase").decode()}
    async with running_agent(alice.home, kubo.api_url) as agent, tcp_api(agent) as base:
        async with (
            aiohttp.ClientSession(timeout=LIMIT) as http,
            http.post(f"{base}/v1/identities", json=body, headers=auth(alice.home)) as r,
        ):
            assert r.status == 400  # a passphrase never crosses TCP
        assert [i.name for i in agent.mesh.identity.list()] == ["alice"]
        unix = aiohttp.UnixConnector(path=str(socket_path(alice.home)))
        async with (
            aiohttp.ClientSession(connector=unix, timeout=LIMIT) as http,
            http.post("http://agent/v1/identities", json=body) as r,
        ):
            assert r.status == 201, await r.text()
            made = await r.json()
        assert made["encrypted"] is True and agent.keys.is_unlocked(made["did"])


# -- keychains -----------------------------------------------------------------------------


async def test_two_backends_on_two_nodes_exchange_a_keychain_key_over_http(
    kubo_pair: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    node_a, node_b = kubo_pair
    alice = await person(node_a.api_url, tmp_path / "alice", "alice")
    bob = await person(node_b.api_url, tmp_path / "bob", "bob")
    await alice.mesh.close()
    await bob.mesh.close()
    async with (
        running_agent(alice.home, node_a.api_url) as a_agent,
        running_agent(bob.home, node_b.api_url) as b_agent,
        tcp_api(a_agent) as a,
        tcp_api(b_agent) as b,
        aiohttp.ClientSession(timeout=LIMIT) as http,
    ):
        ah, bh = auth(alice.home), auth(bob.home)

        async def call(
            base: str, h: dict[str, str], method: str, path: str, status: int, **kw: Any
        ) -> Any:
            async with http.request(method, base + path, headers=h, **kw) as r:
                data = await r.read()
                assert r.status == status, (method, path, data[:500])
                return json.loads(data) if r.content_type == "application/json" else data

        await call(a, ah, "PUT", "/v1/contacts/bob", 200, json={"did": bob.did})
        await call(b, bh, "PUT", "/v1/contacts/alice", 200, json={"did": alice.did})
        since = b_agent.bus.last_id
        received = asyncio.ensure_future(
            sse(http, f"{b}/v1/events", {**bh, "Last-Event-ID": str(since)}, "key_received", 60)
        )
        made = await call(a, ah, "POST", "/v1/keychains", 201, json={"name": "team"})
        fp = made["fingerprint"]
        shared = await call(
            a,
            ah,
            "POST",
            f"/v1/keychains/{fp}/share",
            201,
            json={"to": "bob", "which": "latest", "allow_sharing": True},
        )
        assert shared
        sealed = await call(
            a,
            ah,
            "POST",
            f"/v1/keychains/{fp}/encrypt",
            200,
            data=b"for the team",
            params={"ad": "v1"},
        )

        event = await received  # bob's agent took the offer up, accepted, got the key
        assert event["data"]["keychain"] == fp, event
        plain = await call(
            b, bh, "POST", f"/v1/keychains/{fp}/decrypt", 200, data=sealed, params={"ad": "v1"}
        )
        assert plain == b"for the team"
        found = await call(b, bh, "GET", "/v1/keychains", 200)
        assert [k["fingerprint"] for k in found["keychains"]] == [fp]
        await call(
            b, bh, "POST", f"/v1/keychains/{fp}/decrypt", 422, data=sealed, params={"ad": "v2"}
        )
        people = await call(a, ah, "GET", f"/v1/keychains/{fp}/participants", 200)
        assert {p["did"] for p in people["participants"]} >= {alice.did}
        perms = await call(b, bh, "GET", f"/v1/keychains/{fp}/permissions", 200)
        assert perms["allow_sharing"] is True and perms["allow_management"] is False
        await call(
            b,
            bh,
            "PUT",
            f"/v1/keychains/{fp}/permissions/alice",
            403,
            json={"allow_sharing": False},
        )


async def test_a_strangers_introduction_is_accepted_over_http(
    kubo_pair: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    """alice shares with bob, who never added her: bob's backend sees the introduction
    (an event and GET /v1/introductions), accepts it, and the capsule arrives."""
    node_a, node_b = kubo_pair
    alice = await person(node_a.api_url, tmp_path / "alice", "alice")
    bob = await person(node_b.api_url, tmp_path / "bob", "bob")
    await alice.mesh.close()
    await bob.mesh.close()
    async with (
        running_agent(alice.home, node_a.api_url) as a_agent,
        running_agent(bob.home, node_b.api_url) as b_agent,
        tcp_api(a_agent) as a,
        tcp_api(b_agent) as b,
        aiohttp.ClientSession(timeout=LIMIT) as http,
    ):
        ah, bh = auth(alice.home), auth(bob.home)
        since = b_agent.bus.last_id
        introduced = asyncio.ensure_future(
            sse(http, f"{b}/v1/events", {**bh, "Last-Event-ID": str(since)}, "introduction", 60)
        )
        async with http.put(f"{a}/v1/contacts/bob", json={"did": bob.did}, headers=ah) as r:
            assert r.status == 200
        async with http.post(
            f"{a}/v1/files", params={"name": "n.txt"}, data=b"hi", headers=ah
        ) as r:
            cid = (await r.json())["content"]
        body = {"content": cid, "to": ["bob"], "send": True}
        async with http.post(f"{a}/v1/shares", json=body, headers=ah) as r:
            assert r.status == 201, await r.text()
            capsule = (await r.json())["capsule"]
        await introduced
        async with http.get(f"{b}/v1/introductions", headers=bh) as r:
            assert [i["sender"] for i in (await r.json())["introductions"]] == [alice.did]
        arrived = asyncio.ensure_future(
            sse(
                http,
                f"{b}/v1/events",
                {**bh, "Last-Event-ID": str(b_agent.bus.last_id)},
                "capsule_received",
                60,
            )
        )
        url = f"{b}/v1/introductions/{alice.did}/accept"
        async with http.post(url, json={"petname": "alice"}, headers=bh) as r:
            assert r.status == 200 and (await r.json())["petname"] == "alice"
        assert (await arrived)["data"]["capsule"] == capsule
        async with http.get(f"{b}/v1/capsules/{capsule}/plaintext", headers=bh) as r:
            assert r.status == 200 and await r.read() == b"hi"
        async with http.post(f"{b}/v1/introductions/{alice.did}/reject", headers=bh) as r:
            assert r.status == 200 and (await r.json())["count"] >= 1  # later ones ignored
        stranger = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
        async with http.post(f"{b}/v1/introductions/{stranger}/accept", headers=bh) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


# -- every documented route, with bad input ------------------------------------------------

_BAD_VALUES: list[Any] = [None, 0, -1, 1.5, True, "", "x" * 300, [], ["x"], {}, {"a": 1}]
STATS: dict[int, int] = {}
_BAD_PATHS = ["x", "bafynotacid", "did:key:z6Mkx", "%00", "a" * 200]


def _bad_bodies(op: dict[str, Any]) -> list[Any]:
    """Wrong types for each documented field (one at a time), unknown fields, no body."""
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    bodies: list[Any] = [{}, {"unknown": 1}, [], "text", 3]
    for name in (schema or {}).get("properties", {}):
        bodies += [{name: v} for v in _BAD_VALUES]
    return bodies


async def test_no_documented_route_answers_500_to_bad_input(
    kubo: RunningNode, homes: tuple[Person, Person]
) -> None:
    """Every route of the document, with malformed path parameters and bodies of the wrong
    shape: each answers a 4xx with the error body, never a 500 (an unhandled exception)."""
    alice, _ = homes
    doc = document()
    async with (
        running_agent(alice.home, kubo.api_url) as agent,
        tcp_api(agent) as base,
        aiohttp.ClientSession(timeout=LIMIT) as http,
    ):
        h = auth(alice.home)
        async with http.post(f"{base}/v1/files", params={"name": "f"}, data=b"f", headers=h) as r:
            cid = (await r.json())["content"]
        body = {"content": cid, "to": ["alice"]}
        async with http.post(f"{base}/v1/shares", json=body, headers=h) as r:
            capsule = (await r.json())["capsule"]
        async with http.post(f"{base}/v1/keychains", json={"name": "k"}, headers=h) as r:
            fp = (await r.json())["fingerprint"]
        real = {
            "cid": cid,
            "capsule": capsule,
            "fp": fp,
            "name": "alice",
            "petname": "bob",
            "did": alice.did,
            "who": "alice",
            "offer": capsule,
        }
        seen = 0
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                if path in ("/v1/events", "/v1/agent/republish"):
                    continue  # a stream; a background run (tested elsewhere)
                for bad in [None, *_BAD_PATHS]:
                    url = base + re.sub(
                        r"{(\w+)}", lambda m: real[m[1]] if bad is None else bad, path
                    )
                    for payload in _bad_bodies(op) if method != "get" else [None]:
                        kw: dict[str, Any] = {} if payload is None else {"json": payload}
                        async with http.request(method, url, headers=h, **kw) as r:
                            text = (await r.read()).decode(errors="replace")
                            seen += 1
                            STATS[r.status] = STATS.get(r.status, 0) + 1
                            assert r.status < 500 or r.status in (502, 503, 504), (
                                method,
                                url,
                                payload,
                                text,
                            )
                            if r.status >= 400:
                                error = json.loads(text)["error"]
                                assert error["code"] and error["message"], text
                    if "{" not in path:
                        break  # no path parameter: one round of bodies is enough
        assert seen > 500, STATS


async def test_an_upload_cut_short_stores_nothing(
    kubo: RunningNode, homes: tuple[Person, Person]
) -> None:
    """A client that says 1 MiB and sends 100 kB, then goes: no file row, no new pin."""
    alice, _ = homes
    async with running_agent(alice.home, kubo.api_url) as agent, tcp_api(agent) as base:
        pins = await kubo_pins(kubo.api_url)
        host, port = base.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        head = (
            f"POST /v1/files?name=cut.bin HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {auth(alice.home)['Authorization']}\r\n"
            "Content-Length: 1048576\r\n\r\n"
        )
        writer.write(head.encode() + os.urandom(100_000))
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(2)  # the agent notices the cut and unwinds
        assert agent.mesh.files.list() == []
        assert await kubo_pins(kubo.api_url) == pins
        async with (
            aiohttp.ClientSession(timeout=LIMIT) as http,
            http.get(f"{base}/v1/agent", headers=auth(alice.home)) as r,
        ):
            assert r.status == 200  # and it serves on
