"""The command line's own hints: what to type, where the library can only say what to do.

Library errors carry hints in the library's terms (an app calls it too); the CLI shows
the hint of this table instead where one applies, keyed by the error's ``code`` and, for
codes that cover several situations, its ``reason``. ``{subject}`` in a hint is the
error's ``subject`` (a CID, a name).

>>> from ipfs_share.errors import IdentityNotFoundError, ShareReplacedError
>>> cli_hint(IdentityNotFoundError("x", reason="no_default_identity"))
"pick one with 'ipfs-share identity use NAME', or pass --as NAME"
>>> cli_hint(ShareReplacedError("x", replaced_by="bafyrei..."))
"open the new one: 'ipfs-share open bafyrei...'"
>>> cli_hint(IdentityNotFoundError("x", hint="something else"))
'something else'
"""

from __future__ import annotations

from ipfs_share.errors import IpfsShareError

__all__ = ["BY_CODE", "BY_REASON", "cli_hint"]

# (code, reason): the situation's hint.
BY_REASON: dict[tuple[str, str], str] = {
    ("not_found", "no_introduction"): (
        "see 'ipfs-share inbox'; to add someone who did not introduce themselves, use "
        "'ipfs-share contacts add NAME DID'"
    ),
    ("invalid_input", "not_a_sender_did"): "copy the sender's did from 'ipfs-share inbox'",
    ("identity_not_found", "no_identity"): "create one with 'ipfs-share identity create NAME'",
    ("identity_not_found", "no_default_identity"): (
        "pick one with 'ipfs-share identity use NAME', or pass --as NAME"
    ),
    ("identity_not_found", "not_a_contact"): (
        "add it with 'ipfs-share contacts add NAME DID', or pass a did"
    ),
    ("identity_not_found", "not_published"): (
        "ask its owner to run 'ipfs-share identity publish'; check the nodes are connected "
        "('ipfs-share node status')"
    ),
    ("invalid_input", "not_a_did"): (
        "copy the did from 'ipfs-share identity show' on the other machine"
    ),
    ("invalid_input", "not_owner"): "pass --as with the identity that put it",
    ("invalid_input", "capability_issuer"): (
        "run this as the identity the share names (--as NAME)"
    ),
    ("invalid_input", "never_sent"): "revoke it with 'ipfs-share revoke {subject}'",
    ("invalid_input", "already_delivered"): (
        "revoke it with 'ipfs-share revoke {subject}' to block later opens (what was "
        "delivered cannot be taken back)"
    ),
    ("invalid_input", "name_recipients"): "pass --to NAME",
    ("invalid_input", "content_cid"): (
        "'ipfs-share open' takes the capsule ID that 'ipfs-share share' printed (bafyrei...); "
        "ask the sender for it"
    ),
    ("invalid_input", "own_content_cid"): (
        "you put this file: read it with 'ipfs-share get {subject}' (-o FILE to save it)"
    ),
    ("invalid_input", "drop_without_rotate"): (
        "add --rotate (a dropped recipient who kept the key could still decrypt the old "
        "ciphertext), or revoke the share and share again with the others"
    ),
    ("invalid_input", "not_a_recipient"): "the share's recipients: {subject}",
    ("invalid_input", "contact_exists"): (
        "pass --force to point {subject} at the new did, or choose another petname"
    ),
    ("invalid_input", "shadows_identity"): (
        "{subject} is the name of a local identity here; choose another petname"
    ),
    ("recipient_not_authorized", "own_share"): (
        "you issued this share for others; read your own file with 'ipfs-share get {subject}'"
    ),
    ("not_found", "not_put_here"): (
        "put it first with 'ipfs-share put', or share from the home that put it"
    ),
    ("not_found", "no_file"): "see 'ipfs-share files'",
    ("state_missing", "database_missing"): (
        "restore state.sqlite3 from a backup; or, to start a new one (every feed you sign "
        "then continues from the head the network has, and marks of feeds you read start "
        "again), run 'ipfs-share state recover --yes'"
    ),
    ("share_replaced", "replaced"): "open the new one: 'ipfs-share open {subject}'",
    ("invalid_input", "no_cluster"): (
        "name one with --cluster URL or IPFS_SHARE_CLUSTER ('local' for the one "
        "'ipfs-share cluster up' runs), or leave out --replication"
    ),
    ("invalid_input", "key_fingerprint"): "see the keys with 'ipfs-share keychain show FP'",
    ("keychain_not_found", "keychain_member"): "pass --as with the identity to act as",
    ("keychain_not_found", "no_open_offer"): (
        "see 'ipfs-share keychain outgoing'; a released share cannot be cancelled"
    ),
    ("invalid_input", "service_exists"): (
        "remove it first ('ipfs-share pin remote rm {subject}') or pass --replace"
    ),
    ("not_found", "no_service"): (
        "see 'ipfs-share pin remote ls'; register one with "
        "'ipfs-share pin remote add NAME URL --token-file FILE'"
    ),
    ("store_error", "service_file_damaged"): (
        "register the service again with 'ipfs-share pin remote add {subject} URL "
        "--token-file FILE --replace'"
    ),
    ("invalid_input", "no_origins"): (
        "remote pins need a Kubo node or a cluster (--api or --cluster)"
    ),
    ("invalid_input", "replication_factor"): "ask for a number of copies such as --replication 2",
    ("node_unreachable", "cluster_kubo_down"): (
        "start the cluster's peers ('ipfs-share cluster up'), or check IPFS_SHARE_CLUSTER_KUBO"
    ),
    ("node_request_failed", "cluster_refused"): (
        "see the cluster peer's log ('ipfs-share cluster status' shows where it is)"
    ),
    ("invalid_input", "credentials_in_url"): (
        "give the token with --token-file (or on stdin), never in the URL"
    ),
    ("invalid_input", "query_in_url"): (
        "give the service's API endpoint alone; the token goes in --token-file"
    ),
    ("node_unreachable", "pin_service_down"): (
        "check the service is up and its URL ('ipfs-share pin remote ls')"
    ),
    ("remote_pin_failed", "pin_pending"): (
        "it may still finish: check with 'ipfs-share pin remote ls SERVICE'; make sure the "
        "service can reach this node"
    ),
}
for _p in ("sharing", "rotation", "deletion", "management"):  # keychain permissions
    BY_REASON[("permission_denied", f"allow_{_p}")] = (
        "ask a member with allow_management to grant it ('ipfs-share keychain permissions "
        f"FP {{subject}} --allow-{_p}')"
    )

# code: the hint when the error carries its code's default hint.
BY_CODE: dict[str, str] = {
    "identity_locked": "unlock it in the agent with 'ipfs-share unlock --as NAME'",
    "agent_error": "see the agent's log (the terminal or journal that runs 'ipfs-share serve')",
    "agent_not_running": "start one with 'ipfs-share serve' (README: the agent)",
    "node_unreachable": (
        "start a node with 'ipfs-share node start', or run Kubo in Docker with "
        "'docker compose -f docker/compose.yml up -d', or pass --api / set IPFS_SHARE_API"
    ),
    "node_request_failed": "see the node's message above; 'ipfs-share node status' shows the node",
    "node_timeout": (
        "the node or its peers are slow or away; check 'ipfs-share node status' and that "
        "the nodes are connected, then retry"
    ),
    "node_version_unsupported": (
        "install the pinned Kubo with 'ipfs-share node install' or use docker/compose.yml"
    ),
    "feature_unavailable": (
        "enable the feature in the node's config ('ipfs-share node start' enables it)"
    ),
    "mailbox_unsupported": (
        "mailboxes need a node that stores IPNS records signed elsewhere (Kubo >= 0.40, "
        "name/put): install the pinned Kubo with 'ipfs-share node install' or use "
        "docker/compose.yml; until then, send the capsule ID another way"
    ),
    "node_management_failed": (
        "see 'ipfs-share node status' and the node log in the ipfs-share home"
    ),
    "kubo_install_failed": (
        "install Go >= 1.26.5 and retry 'ipfs-share node install', or run Kubo in Docker: "
        "docker compose -f docker/compose.yml up -d"
    ),
    "state_missing": (
        "restore state.sqlite3 from a backup, or start a new one on purpose with "
        "'ipfs-share state recover --yes'"
    ),
    "passphrase_invalid": (
        "check the passphrase (IPFS_SHARE_PASSPHRASE, --passphrase-file, or the prompt)"
    ),
    "passphrase_required": (
        "give the passphrase at the prompt, in IPFS_SHARE_PASSPHRASE, or with "
        "--passphrase-file FILE"
    ),
    "ipns_record_expired": (
        "the record's owner must publish again with its keys ('ipfs-share republish "
        "--renew' renews records of your own)"
    ),
    "capability_required": (
        "pass --capability FILE, a token from the identity the share names "
        "('ipfs-share capability issue')"
    ),
    "revocation_unavailable": (
        "retry when the issuer's node is reachable, or accept a recently checked list "
        "with --max-staleness SECONDS"
    ),
    "download_not_allowed": "the owner shared it for viewing only: read it without -o",
    "replication_failed": (
        "check the cluster's peers with 'ipfs-share cluster status' (or ipfs-cluster-ctl "
        "peers ls), then retry, or ask for fewer copies with --replication"
    ),
    "pin_service_failed": (
        "check the service's URL with 'ipfs-share pin remote ls' and that the service is up"
    ),
    "pin_service_unauthorized": (
        "the service refused the access token: register it again with a valid one, "
        "'ipfs-share pin remote add NAME URL --token-file FILE --replace'"
    ),
    "remote_pin_failed": (
        "the service could not fetch the content: check it can reach this node (its "
        "addresses were sent as origins), then retry the put with --pin-remote"
    ),
    "cluster_install_failed": (
        "install Go and retry 'ipfs-share cluster install', or run a cluster in Docker: "
        "docker compose -f docker/cluster-compose.yml up -d"
    ),
    "keychain_not_found": (
        "see 'ipfs-share keychain list'; a keychain shared with you arrives by sync"
    ),
}


def cli_hint(exc: IpfsShareError) -> str:
    """The hint to print for ``exc``: this table's, where it has one for the situation
    (or, for an error with its code's default hint, for the code); else the error's."""
    hint = None
    if exc.reason is not None:
        hint = BY_REASON.get((exc.code, exc.reason))
    if hint is None and exc.hint == type(exc).default_hint:
        hint = BY_CODE.get(exc.code)
    if hint is None:
        return exc.hint
    return hint.replace("{subject}", exc.subject or "")
