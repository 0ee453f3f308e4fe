"""The HTTP API's contract: an OpenAPI 3.1 document, built here from one table of
operations and committed as ``docs/openapi.json`` (``python -m ipfs_share.http.openapi``
writes it). The agent serves it at ``/openapi.json``. Tests keep it honest: the committed
file equals :func:`document`, every route the app has is in it and every path in it is a
route, and a real validator (openapi-spec-validator) accepts it.

>>> doc = document()
>>> doc["openapi"], "/v1/capsules/{capsule}/plaintext" in doc["paths"]
('3.1.0', True)
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import ipfs_share
from ipfs_share.status import TABLE

__all__ = ["OPERATIONS", "Op", "document", "main"]

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
OBJ: Schema = {"type": "object"}
STRS: Schema = {"type": "array", "items": STR}
BYTES: Schema = {"type": "string", "contentMediaType": "application/octet-stream"}


@dataclass(frozen=True)
class Op:
    """One route: its method and path, what it is for, its JSON body's fields, its query
    parameters, its success status and what that answers."""

    method: str
    path: str
    summary: str
    tag: str
    body: dict[str, Schema] | None = None
    required: tuple[str, ...] = ()
    query: dict[str, Schema] = field(default_factory=dict)
    headers: dict[str, Schema] = field(default_factory=dict)
    status: int = 200
    answer: Schema = field(default_factory=lambda: OBJ)
    keys: bool = False  # needs an identity's keys: may answer 423 identity_locked
    acting: bool = True  # takes the acting identity
    raw_body: bool = False
    streams: bool = False  # answers the plaintext (200/206/416)
    unix_only: bool = False


_POLICY: Schema = {
    "type": "object",
    "properties": {"provider": STR, "params": OBJ, "allow": STRS},
    "required": ["provider"],
}

OPERATIONS: tuple[Op, ...] = (
    Op("get", "/openapi.json", "this document", "agent", acting=False),
    Op(
        "get",
        "/v1/agent",
        "the agent's status (node, unlocked identities, republish, "
        "watches, pending items, where the HTTP API listens)",
        "agent",
        acting=False,
    ),
    Op(
        "post",
        "/v1/agent/unlock",
        "unlock an identity for a while (the home's socket only: a passphrase never crosses TCP)",
        "agent",
        body={"identity": STR, "passphrase_b64": STR, "seconds": {"type": "number"}},
        acting=False,
        unix_only=True,
    ),
    Op(
        "post",
        "/v1/agent/lock",
        "forget unlocked keys: of one identity, or all (the home's socket only)",
        "agent",
        body={"identity": STR},
        acting=False,
        unix_only=True,
    ),
    Op(
        "post",
        "/v1/agent/reload",
        "contacts changed: watch their mailboxes now",
        "agent",
        acting=False,
    ),
    Op(
        "post",
        "/v1/agent/republish",
        "run the republish now, not waiting for the "
        "schedule (its outcome is a 'republish' event and in the status)",
        "agent",
        acting=False,
    ),
    Op(
        "post",
        "/v1/ops/{name}",
        "a whole library operation as the CLI delegates it "
        "(cancel, capability, inbox, outgoing, publish, revoke, send, share)",
        "agent",
        body={},
        keys=True,
        acting=False,
    ),
    Op(
        "get",
        "/v1/events",
        "the agent's events as Server-Sent Events (capsule_received, "
        "ack_received, introduction, republish, node, ...), each with an id; send "
        "Last-Event-ID (or ?last_id=) to resume; an event 'missed' says the ring no longer "
        "held them all (resync); a slow reader is cut off and resumes",
        "events",
        query={"last_id": INT},
        headers={"Last-Event-ID": STR},
        acting=False,
        answer={"type": "string", "contentMediaType": "text/event-stream"},
    ),
    Op("get", "/v1/identities", "the local identities", "identities", acting=False),
    Op(
        "post",
        "/v1/identities",
        "make an identity: over TCP only unsealed ('sealed': "
        "false; the keys stay in the clear in the 0700 home); sealed ones on the home's "
        "socket with 'passphrase_b64'",
        "identities",
        body={"name": STR, "sealed": BOOL, "passphrase_b64": STR},
        required=("name",),
        status=201,
        acting=False,
    ),
    Op("get", "/v1/identities/{name}", "one local identity", "identities", acting=False),
    Op(
        "post",
        "/v1/identities/{name}/publish",
        "publish its identity document (IPNS)",
        "identities",
        keys=True,
        acting=False,
    ),
    Op(
        "post",
        "/v1/resolve",
        "fetch and verify a published identity; with 'petname', save it as a contact",
        "identities",
        body={"did": STR, "petname": STR},
        required=("did",),
        acting=False,
    ),
    Op("get", "/v1/contacts", "petnames for other people's dids", "contacts", acting=False),
    Op(
        "put",
        "/v1/contacts/{petname}",
        "name a did (its mailbox is watched)",
        "contacts",
        body={"did": STR},
        required=("did",),
        acting=False,
    ),
    Op("delete", "/v1/contacts/{petname}", "forget a contact", "contacts", acting=False),
    Op("get", "/v1/introductions", "pending introductions from senders not yet added", "contacts"),
    Op(
        "post",
        "/v1/introductions/{did}/accept",
        "make the sender a contact (its mailbox is read from now on)",
        "contacts",
        body={"petname": STR},
    ),
    Op(
        "post",
        "/v1/introductions/{did}/reject",
        "drop a sender's pending introductions",
        "contacts",
    ),
    Op(
        "post",
        "/v1/files",
        "encrypt the request body, streamed, and store it pinned "
        "(no size limit; Content-Type is the file's media type)",
        "files",
        query={"name": STR},
        headers={"X-Ipfs-Share-Name": STR},
        raw_body=True,
        status=201,
    ),
    Op(
        "get",
        "/v1/files",
        "the files put from this home (the acting identity's, if named)",
        "files",
    ),
    Op("get", "/v1/files/{cid}", "one file put from this home", "files", acting=False),
    Op("delete", "/v1/files/{cid}", "unpin a file's ciphertext here", "files", acting=False),
    Op(
        "get",
        "/v1/files/{cid}/plaintext",
        "the owner's own file, decrypted and streamed",
        "files",
        keys=True,
        acting=False,
        streams=True,
    ),
    Op(
        "get",
        "/v1/files/{cid}/placement",
        "where the ciphertext is pinned, peer by peer, "
        "when the storage is an IPFS Cluster (null on one node)",
        "files",
        acting=False,
    ),
    Op(
        "post",
        "/v1/shares",
        "share a file with recipients (every option the CLI has); "
        "with 'send', deliver it to their inboxes too",
        "shares",
        body={
            "content": STR,
            "to": STRS,
            "expires_in": INT,
            "allow_download": BOOL,
            "policy": _POLICY,
            "capability": STR,
            "send": BOOL,
        },
        required=("content", "to"),
        status=201,
        keys=True,
    ),
    Op("get", "/v1/shares", "the shares made from this home", "shares", query={"content": STR}),
    Op(
        "get",
        "/v1/shares/{capsule}",
        "one share, its recipients and the opens recorded here",
        "shares",
        acting=False,
    ),
    Op(
        "post",
        "/v1/shares/{capsule}/revoke",
        "revoke a share; 'rotate' re-keys the "
        "content, 'drop' leaves recipients out of what is re-issued, 'dry_run' changes "
        "nothing and says what would be done",
        "shares",
        body={"rotate": BOOL, "drop": STRS, "dry_run": BOOL},
        keys=True,
    ),
    Op(
        "post",
        "/v1/shares/{capsule}/send",
        "send a capsule to its recipients' inboxes (or to 'to')",
        "mailboxes",
        body={"to": STRS},
        keys=True,
    ),
    Op(
        "post",
        "/v1/shares/{capsule}/capabilities",
        "issue a capability token for a share that requires one",
        "shares",
        body={"to": STR, "valid_for": STR},
        required=("to",),
        status=201,
        keys=True,
    ),
    Op(
        "get",
        "/v1/capsules/{capsule}/plaintext",
        "open a capsule: the plaintext, streamed; a view-only share is refused with ?save=1",
        "open",
        query={"max_staleness": {"type": "number"}, "save": STR},
        headers={"X-Ipfs-Share-Capability": STR},
        keys=True,
        streams=True,
    ),
    Op(
        "get",
        "/v1/inbox",
        "what arrived (the agent's watch keeps it current)",
        "mailboxes",
        query={"all": BOOL},
    ),
    Op(
        "post",
        "/v1/inbox/sync",
        "sync the mailboxes now ('from': some senders only)",
        "mailboxes",
        body={"from": STRS, "all": BOOL},
        keys=True,
    ),
    Op(
        "get",
        "/v1/outgoing",
        "capsules sent, and whether they were delivered or opened",
        "mailboxes",
        query={"refresh": BOOL},
        keys=True,
    ),
    Op(
        "post",
        "/v1/outgoing/{capsule}/cancel",
        "withdraw a sent capsule nobody has picked up yet (it is revoked)",
        "mailboxes",
        keys=True,
        acting=False,
    ),
    Op("get", "/v1/keychains", "the keychains the acting identity belongs to", "keychains"),
    Op(
        "post",
        "/v1/keychains",
        "make a keychain with its first key",
        "keychains",
        body={"name": STR, "expires_in": INT},
        required=("name",),
        status=201,
        keys=True,
    ),
    Op(
        "post",
        "/v1/keychains/sync",
        "fetch what members wrote, accept keys shared with "
        "you (the agent also does this as notices arrive)",
        "keychains",
        keys=True,
    ),
    Op("get", "/v1/keychains/outgoing", "keys you offered that are not accepted yet", "keychains"),
    Op(
        "post",
        "/v1/keychains/outgoing/cancel",
        "cancel open offers to a recipient",
        "keychains",
        body={"to": STR, "key": STR, "keychain": STR},
        required=("to",),
        keys=True,
    ),
    Op(
        "post",
        "/v1/keychains/receive",
        "an op handed over out of band: fetch it and sync",
        "keychains",
        body={"op": STR},
        required=("op",),
        keys=True,
    ),
    Op(
        "post",
        "/v1/keychains/offers/{offer}/accept",
        "accept an offer by hand (when the service does not accept by itself)",
        "keychains",
        keys=True,
    ),
    Op(
        "get",
        "/v1/keychains/{fp}",
        "one keychain: its keys, members and your permissions",
        "keychains",
        keys=True,
    ),
    Op(
        "post",
        "/v1/keychains/{fp}/rotate",
        "add a new key (delivered to members with sharing)",
        "keychains",
        body={"expires_in": INT},
        status=201,
        keys=True,
    ),
    Op(
        "post",
        "/v1/keychains/{fp}/share",
        "share the latest key, all keys, or one "
        "('which': latest, all or a key fingerprint), granting permissions you hold",
        "keychains",
        body={
            "to": STR,
            "which": STR,
            "expires_in": INT,
            "allow_sharing": BOOL,
            "allow_rotation": BOOL,
            "allow_deletion": BOOL,
            "allow_management": BOOL,
        },
        required=("to",),
        status=201,
        keys=True,
    ),
    Op(
        "get",
        "/v1/keychains/{fp}/participants",
        "members (or, with ?key=, who holds that key, since when, from whom)",
        "keychains",
        query={"key": STR},
    ),
    Op(
        "get",
        "/v1/keychains/{fp}/permissions",
        "a member's permissions (?who=; default you)",
        "keychains",
        query={"who": STR},
    ),
    Op(
        "put",
        "/v1/keychains/{fp}/permissions/{who}",
        "change a member's permissions (needs management)",
        "keychains",
        body={
            "allow_sharing": BOOL,
            "allow_rotation": BOOL,
            "allow_deletion": BOOL,
            "allow_management": BOOL,
        },
        keys=True,
    ),
    Op(
        "post",
        "/v1/keychains/{fp}/ban",
        "ban a member (and rotate, unless 'rotate': false)",
        "keychains",
        body={"who": STR, "rotate": BOOL},
        required=("who",),
        keys=True,
    ),
    Op("post", "/v1/keychains/{fp}/leave", "leave the keychain", "keychains", keys=True),
    Op(
        "post",
        "/v1/keychains/{fp}/encrypt",
        "seal the body with the most recent key (?ad= associated data)",
        "keychains",
        query={"ad": STR},
        raw_body=True,
        answer=BYTES,
        keys=True,
    ),
    Op(
        "post",
        "/v1/keychains/{fp}/decrypt",
        "open a sealed body (?ad= as it was sealed)",
        "keychains",
        query={"ad": STR},
        raw_body=True,
        answer=BYTES,
        keys=True,
    ),
)

_ERROR_REF = {"$ref": "#/components/responses/Error"}
_STATUS_TEXT = {
    400: "bad input",
    401: "no bearer token, or a wrong one (nothing was done)",
    403: "not allowed",
    404: "not found",
    409: "exists already, or a conflicting change",
    410: "the share is no longer valid",
    416: "the range starts past the end",
    422: "forged or damaged data",
    423: "the identity is locked in the agent: run 'ipfs-share unlock --as NAME'",
    500: "failed",
    502: "the node failed",
    503: "not available now; retry",
    504: "the node did not answer in time",
}


def _operation(op: Op) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": STR}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.acting:
        params.append(
            {
                "name": "X-Ipfs-Share-As",
                "in": "header",
                "description": "the local identity acting (or ?as=; default: the home's)",
                "schema": STR,
            }
        )
        params.append({"name": "as", "in": "query", "schema": STR})
    params += [{"name": n, "in": "query", "schema": s} for n, s in op.query.items()]
    params += [{"name": n, "in": "header", "schema": s} for n, s in op.headers.items()]
    if op.streams:
        params.append(
            {
                "name": "Range",
                "in": "header",
                "description": "bytes=A-B, bytes=A- or bytes=-N",
                "schema": STR,
            }
        )
    out: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "tags": [op.tag],
    }
    if params:
        out["parameters"] = params
    if op.raw_body:
        out["requestBody"] = {
            "required": True,
            "content": {"*/*": {"schema": BYTES}},
        }
    elif op.body is not None:
        schema: Schema = {"type": "object", "properties": op.body}
        if op.required:
            schema["required"] = list(op.required)
        out["requestBody"] = {"content": {"application/json": {"schema": schema}}}
    responses: dict[str, Any] = {}
    if op.streams:
        plain = {"*/*": {"schema": BYTES}}
        responses["200"] = {"description": "the whole plaintext", "content": plain}
        responses["206"] = {"description": "the range asked for", "content": plain}
        responses["416"] = _ERROR_REF
    elif op.answer is OBJ:
        responses[str(op.status)] = {
            "description": "done",
            "content": {"application/json": {"schema": OBJ}},
        }
    else:
        responses[str(op.status)] = {
            "description": "the bytes" if op.answer is BYTES else "the stream",
            "content": {op.answer["contentMediaType"]: {"schema": {"type": "string"}}},
        }
    responses["401"] = _ERROR_REF
    if op.keys:
        responses["423"] = _ERROR_REF
    responses["default"] = _ERROR_REF
    out["responses"] = responses
    return out


def _operation_id(op: Op) -> str:
    words = [w.strip("{}") for w in op.path.split("/") if w and w != "v1"]
    return op.method + "".join(w[:1].upper() + w[1:] for w in re.split(r"[._-]", "_".join(words)))


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    statuses = sorted({s.http for s in TABLE})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ipfs-share agent HTTP API",
            "version": ipfs_share.__version__,
            "description": (
                "End-to-end encrypted sharing on IPFS, served by 'ipfs-share serve'. Every "
                "request carries 'Authorization: Bearer TOKEN' ('ipfs-share agent token'). "
                'Errors are {"error": {"code", "message", "hint"}} with a status '
                "from the error code (README: exit codes and HTTP statuses). The routes "
                "marked for the home's socket only are not served on TCP."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:5052"}],
        "security": [{"bearer": []}],
        "tags": [{"name": t} for t in dict.fromkeys(op.tag for op in OPERATIONS)],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message", "hint"],
                            "properties": {
                                "code": {
                                    "type": "string",
                                    "description": "stable; one of the codes the status "
                                    "table lists, or a subclass of one",
                                },
                                "message": STR,
                                "hint": STR,
                            },
                        }
                    },
                }
            },
            "responses": {
                "Error": {
                    "description": "an error; statuses used: "
                    + ", ".join(f"{s} ({_STATUS_TEXT.get(s, '')})" for s in statuses),
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        },
    }


def unix_only() -> set[tuple[str, str]]:
    return {(op.method, op.path) for op in OPERATIONS if op.unix_only}


def main(argv: list[str] | None = None) -> int:
    """Print the document (``> docs/openapi.json``)."""
    sys.stdout.write(json.dumps(document(), indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
