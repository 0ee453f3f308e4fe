"""The one error hierarchy of ipfs-share.

Every error carries a stable ``code`` (a string that scripts, HTTP handlers and the CLI's
exit codes key on; it never changes once released) and a ``hint`` that tells a person what
to do next, in the library's terms (a caller may be an app, not the command line: no hint
here names a command or a flag). Where one code covers several situations, ``reason``
names the situation (a stable string, or None), so a front end can give its own hint
(the CLI's are in :mod:`ipfs_share.cli.hints`). Messages are lower case, end without a
period, and say what was expected and what was found. No error message ever contains
secret material.

The tree::

    IpfsShareError
    ├── InvalidInputError (also ValueError)          invalid_input
    │   ├── CidInvalidError                           cid_invalid
    │   ├── BlockTooLargeError                        block_too_large
    │   ├── FormatError                               format_invalid
    │   │   ├── IpnsRecordInvalidError                ipns_record_invalid
    │   │   │   └── IpnsRecordExpiredError            ipns_record_expired
    │   │   ├── IdentityDocumentInvalidError          identity_document_invalid
    │   │   └── ChainInvalidError                     chain_invalid
    │   │       ├── FeedRollbackError                 feed_rollback
    │   │       └── FeedForkError                     feed_fork
    │   ├── SignatureInvalidError                     signature_invalid
    │   ├── DecryptionError                           decryption_failed
    │   ├── PassphraseRequiredError                   passphrase_required
    │   │   └── IdentityLockedError                   identity_locked
    │   ├── PassphraseInvalidError                    passphrase_invalid
    │   ├── IntroductionRejectedError                 introduction_rejected
    │   ├── IdentityExistsError                       identity_exists
    │   └── RangeNotSatisfiableError                  range_not_satisfiable
    ├── NodeError                                     node_error
    │   ├── NodeUnreachableError                      node_unreachable
    │   ├── NodeVersionError                          node_version_unsupported
    │   ├── NodeRequestError                          node_request_failed
    │   ├── NodeTimeoutError                          node_timeout
    │   ├── NotFoundError                             not_found
    │   ├── IntegrityError                            integrity_error
    │   │   └── StreamTruncatedError                  stream_truncated
    │   ├── FeatureUnavailableError                   feature_unavailable
    │   ├── MailboxUnsupportedError                   mailbox_unsupported
    │   ├── ReplicationError                          replication_failed
    │   └── PinServiceError                           pin_service_failed
    │       ├── PinServiceAuthError                   pin_service_unauthorized
    │       └── RemotePinFailedError                  remote_pin_failed
    ├── NodeManagementError                           node_management_failed
    │   ├── KuboInstallError                          kubo_install_failed
    │   └── ClusterInstallError                       cluster_install_failed
    ├── StoreError                                    store_error
    │   ├── StateMissingError                         state_missing
    │   └── KeychainConflictError                     keychain_conflict
    ├── KeychainNotFoundError                         keychain_not_found
    ├── PermissionDeniedError                         permission_denied
    ├── AgentError                                    agent_error
    │   ├── AgentRunningError                         agent_running
    │   ├── AgentNotRunningError                      agent_not_running
    │   └── UnauthorizedError                         unauthorized
    └── ShareError (the share flow; codes fixed by docs/spec/capsule.md)
        ├── IdentityNotFoundError                     identity_not_found
        ├── RecipientNotAuthorizedError               recipient_not_authorized
        ├── KeyUnwrapFailedError                      key_unwrap_failed
        ├── ShareExpiredError                         share_expired
        ├── ShareRevokedError                         share_revoked
        │   └── ShareReplacedError                    share_replaced
        ├── PolicyProviderRequiredError               policy_provider_required
        ├── PolicyDeniedError                         policy_denied
        ├── CapabilityRequiredError                   capability_required
        ├── CapabilityInvalidError                    capability_invalid
        ├── RevocationUnavailableError                revocation_unavailable
        └── DownloadNotAllowedError                   download_not_allowed

>>> try:
...     raise CidInvalidError("expected a CID, found 'nope'")
... except ValueError as exc:
...     (exc.code, str(exc))
('cid_invalid', "expected a CID, found 'nope'")
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "AgentNotRunningError",
    "AgentRunningError",
    "BlockTooLargeError",
    "CapabilityInvalidError",
    "CapabilityRequiredError",
    "ChainInvalidError",
    "CidInvalidError",
    "ClusterInstallError",
    "DecryptionError",
    "DownloadNotAllowedError",
    "FeatureUnavailableError",
    "FeedForkError",
    "FeedRollbackError",
    "FormatError",
    "IdentityDocumentInvalidError",
    "IdentityExistsError",
    "IdentityLockedError",
    "IdentityNotFoundError",
    "IntegrityError",
    "IntroductionRejectedError",
    "InvalidInputError",
    "IpfsShareError",
    "IpnsRecordExpiredError",
    "IpnsRecordInvalidError",
    "KeyUnwrapFailedError",
    "KeychainConflictError",
    "KeychainNotFoundError",
    "KuboInstallError",
    "MailboxUnsupportedError",
    "NodeError",
    "NodeManagementError",
    "NodeRequestError",
    "NodeTimeoutError",
    "NodeUnreachableError",
    "NodeVersionError",
    "NotFoundError",
    "PassphraseInvalidError",
    "PassphraseRequiredError",
    "PermissionDeniedError",
    "PinServiceAuthError",
    "PinServiceError",
    "PolicyDeniedError",
    "PolicyProviderRequiredError",
    "RangeNotSatisfiableError",
    "RecipientNotAuthorizedError",
    "RemotePinFailedError",
    "ReplicationError",
    "RevocationUnavailableError",
    "ShareError",
    "ShareExpiredError",
    "ShareReplacedError",
    "ShareRevokedError",
    "SignatureInvalidError",
    "StateMissingError",
    "StoreError",
    "StreamTruncatedError",
    "UnauthorizedError",
    "UsageError",
    "error_class",
]

START_NODE_HINT = (
    "start a Kubo node (ipfs-share can manage one, or run it in Docker with "
    "docker/compose.yml), or point at one with api= or IPFS_SHARE_API"
)


class IpfsShareError(Exception):
    """Root of every error ipfs-share raises on purpose."""

    code: str = "ipfs_share_error"
    default_hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        reason: str | None = None,
        subject: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint
        self.reason = reason  # which situation of this code (stable), for front ends' hints
        self.subject = subject  # what the reason is about (a CID, a name), if anything

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


# --- bad input -------------------------------------------------------------------------


class InvalidInputError(IpfsShareError, ValueError):
    """Input that can never succeed as given: fix the input, do not retry."""

    code = "invalid_input"


class UsageError(InvalidInputError):
    """A command line that does not parse (the command line's exit 2); ``usage`` is the
    usage text to show with it."""

    code = "usage_error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        reason: str | None = None,
        subject: str | None = None,
        usage: str = "",
    ) -> None:
        super().__init__(message, hint=hint, reason=reason, subject=subject)
        self.usage = usage


class CidInvalidError(InvalidInputError):
    code = "cid_invalid"
    default_hint = "pass a CID such as bafy... or bafk... (CIDv1) or Qm... (CIDv0)"


class BlockTooLargeError(InvalidInputError):
    code = "block_too_large"
    default_hint = "blocks are capped at 2 MiB; store large data with add (it is chunked)"


class FormatError(InvalidInputError):
    """Bytes that do not decode as the format they claim to be."""

    code = "format_invalid"
    default_hint = "the data is malformed or was not written by a compatible version"


class IpnsRecordInvalidError(FormatError):
    code = "ipns_record_invalid"
    default_hint = "the IPNS record is malformed, expired, or not signed by the name's key"


class IpnsRecordExpiredError(IpnsRecordInvalidError):
    """A well-formed, validly signed IPNS record past its end of validity: its owner has not
    renewed it (a renewal needs the owner's key)."""

    code = "ipns_record_expired"
    default_hint = (
        "the record's owner must publish again with its keys (a republish renews records "
        "of your own when their keys are unlocked)"
    )


class ChainInvalidError(FormatError):
    """A signed chain (mailbox entries, revocation heads) with a gap, a fork or a rollback:
    each block may be well formed, but together they are not one history."""

    code = "chain_invalid"
    default_hint = "the chain was rewritten or is incomplete; resync, and report it if it repeats"


class FeedRollbackError(ChainInvalidError):
    """A feed's head older than one this home already verified: a stale answer kept too
    long, or someone serving an old head on purpose (to hide what came after it)."""

    code = "feed_rollback"
    default_hint = (
        "a node served an older head than one seen before; retry later, or read the feed "
        "through another node, and report it if it repeats"
    )


class FeedForkError(ChainInvalidError):
    """Two different entries at one sequence of a feed, both signed by its owner: the
    history this home verified was rewritten (two devices writing one feed, or a lie)."""

    code = "feed_fork"
    default_hint = (
        "the owner's feed has two histories; ask its owner whether two devices write it, "
        "and report it if not"
    )


class SignatureInvalidError(InvalidInputError):
    """A signature that does not verify under the key it was checked against."""

    code = "signature_invalid"
    default_hint = "the data was not signed by the expected key, or was changed after signing"


class DecryptionError(InvalidInputError):
    """Ciphertext that does not decrypt: changed, cut short, reordered, extended, or sealed
    under another key.

    Deliberately coarse (docs/spec/envelope.md): the message never says which check
    failed, so a decryptor is no oracle. Like a bad signature, the input can never succeed
    as given: content addressing means fetching the same CID again gives the same bytes.
    """

    code = "decryption_failed"
    default_hint = (
        "the encrypted data was changed, cut short, or is not for this key; "
        "ask the sender to share it again"
    )


class IdentityDocumentInvalidError(FormatError):
    """An identity document that fails verification: bad signature, a key that is not the
    name's, or a sequence lower than one already seen."""

    code = "identity_document_invalid"
    default_hint = (
        "the published identity is forged, damaged or stale; ask its owner to publish again"
    )


class PassphraseInvalidError(InvalidInputError):
    code = "passphrase_invalid"
    default_hint = "check the passphrase (what the passphrase source gave)"


class IntroductionRejectedError(InvalidInputError):
    """An introduction that verifies but is not for us now: addressed to another
    identity, signed outside the clock window, or seen before (a replay)."""

    code = "introduction_rejected"
    default_hint = "introductions are re-sent by the sender's agent; check both clocks"


class IdentityExistsError(InvalidInputError):
    code = "identity_exists"
    default_hint = "choose another name, or rename or delete the existing identity first"


class RangeNotSatisfiableError(InvalidInputError):
    """A byte range (an HTTP ``Range``) that does not overlap the file."""

    code = "range_not_satisfiable"
    default_hint = "ask for bytes=A-B with A below the file's size (X-Ipfs-Share-Size)"


class PassphraseRequiredError(InvalidInputError):
    code = "passphrase_required"
    default_hint = "give the passphrase at the prompt, in IPFS_SHARE_PASSPHRASE, or in a file"


class IdentityLockedError(PassphraseRequiredError):
    """The agent holds no unlocked keys for the identity, and has nobody to ask: it never
    prompts. The CLI then unlocks by itself, as it does without an agent."""

    code = "identity_locked"
    default_hint = "unlock the identity in the agent (it never asks for a passphrase itself)"


# --- the node and storage --------------------------------------------------------------


class NodeError(IpfsShareError):
    """The storage node failed, refused, or answered something we cannot trust."""

    code = "node_error"


class NodeUnreachableError(NodeError):
    code = "node_unreachable"
    default_hint = START_NODE_HINT


class NodeVersionError(NodeError):
    code = "node_version_unsupported"
    default_hint = "use the Kubo version ipfs-share pins (or docker/compose.yml, which runs it)"


class NodeRequestError(NodeError):
    """Kubo answered a request with an error."""

    code = "node_request_failed"
    default_hint = "see the node's message above, and check the node's state"


class NodeTimeoutError(NodeError):
    """A request to the node did not finish within its deadline."""

    code = "node_timeout"
    default_hint = (
        "the node or its peers are slow or away; check the node and that the nodes are "
        "connected, then retry"
    )


class NotFoundError(NodeError):
    code = "not_found"
    default_hint = (
        "check the CID or name; the content may not be stored on or reachable by this node"
    )


class IntegrityError(NodeError):
    """Data did not match its address or its declared length."""

    code = "integrity_error"
    default_hint = (
        "the node returned data that does not match its address; retry, or check the node"
    )


class StreamTruncatedError(IntegrityError):
    code = "stream_truncated"
    default_hint = "the transfer ended early; retry, and check the node's log if it repeats"


class FeatureUnavailableError(NodeError):
    code = "feature_unavailable"
    default_hint = "enable the feature in the node's config (the node ipfs-share manages has it)"


class MailboxUnsupportedError(NodeError):
    """The node cannot carry mailboxes: it cannot store IPNS records signed elsewhere
    (``name/put``, Kubo >= 0.40), which is how a mailbox head is published."""

    code = "mailbox_unsupported"
    default_hint = (
        "mailboxes need a node that stores IPNS records signed elsewhere (Kubo >= 0.40, "
        "name/put), such as the Kubo version ipfs-share pins; until then, send the capsule "
        "ID another way"
    )


class ReplicationError(NodeError):
    """IPFS Cluster could not place or confirm the copies asked for: too few peers
    answered, accepted a write, or reported the pin as pinned in time. Whatever was
    half-done is undone before this is raised."""

    code = "replication_failed"
    default_hint = (
        "check the cluster's peers (ipfs-cluster-ctl peers ls), then retry, or ask for "
        "fewer copies (replication=)"
    )


class PinServiceError(NodeError):
    """A remote pinning service (the IPFS Pinning Service API) refused or failed a request."""

    code = "pin_service_failed"
    default_hint = "check the service's registered URL and that the service is up"


class PinServiceAuthError(PinServiceError):
    code = "pin_service_unauthorized"
    default_hint = (
        "the service refused the access token: register the service again with a valid one"
    )


class RemotePinFailedError(PinServiceError):
    """The service accepted the pin request but did not pin it: it reported ``failed``,
    or had not pinned it when we stopped waiting."""

    code = "remote_pin_failed"
    default_hint = (
        "the service could not fetch the content: check it can reach this node (its "
        "addresses were sent as origins), then retry the remote pin"
    )


class NodeManagementError(IpfsShareError):
    code = "node_management_failed"
    default_hint = "see the node's state and its log in the ipfs-share home"


class KuboInstallError(NodeManagementError):
    code = "kubo_install_failed"
    default_hint = "install Go >= 1.26.5 and retry, or run Kubo in Docker (docker/compose.yml)"


class ClusterInstallError(NodeManagementError):
    code = "cluster_install_failed"
    default_hint = "install Go and retry, or run a cluster in Docker (docker/cluster-compose.yml)"


class StoreError(IpfsShareError):
    """Local state (the home's database and files, or the embedded on-disk store) could
    not complete an operation."""

    code = "store_error"
    default_hint = "check the store directory exists, is writable, and has free space"


class StateMissingError(StoreError):
    """The home has key files but its state database is missing or empty: starting a new
    one silently would restart the feeds it signs and forget what protects it."""

    code = "state_missing"
    default_hint = (
        "restore state.sqlite3 from a backup, or start a new database on purpose "
        "(StateDB(home, recover=True))"
    )


# --- keychains (docs/spec/keychain.md) ---------------------------------------------------


class KeychainNotFoundError(IpfsShareError):
    code = "keychain_not_found"
    default_hint = "list the keychains of this home; a keychain shared with you arrives by a sync"


class PermissionDeniedError(IpfsShareError):
    """The op would be ignored by every replica: refused before it is written. The code is
    also the reason replicas give such an op when someone writes it anyway."""

    code = "permission_denied"
    default_hint = "ask a member with allow_management to grant the permission"


class KeychainConflictError(StoreError):
    """Another process of this home wrote to the same chain at the same time."""

    code = "keychain_conflict"
    default_hint = "retry: another ipfs-share process wrote to this keychain just now"


# --- the agent -------------------------------------------------------------------------


class AgentError(IpfsShareError):
    """The agent (``ipfs-share serve``) could not start, or a request to it failed."""

    code = "agent_error"
    default_hint = "see the agent's log (the terminal or journal that runs it)"


class AgentRunningError(AgentError):
    code = "agent_running"
    default_hint = "one agent serves a home; stop the running one first (by its pid), or use it"


class AgentNotRunningError(AgentError):
    code = "agent_not_running"
    default_hint = "start the home's agent (README: the agent)"


class UnauthorizedError(AgentError):
    """A request to the agent's HTTP API without its bearer token, or with a wrong one."""

    code = "unauthorized"
    default_hint = (
        "send 'Authorization: Bearer TOKEN' with the token the agent keeps in "
        "<home>/agent.token (its owner can read it; the agent's CLI prints it too)"
    )


# --- the share flow (codes fixed by docs/spec/capsule.md; never rename) -----------------


class ShareError(IpfsShareError):
    code = "share_error"


class IdentityNotFoundError(ShareError):
    code = "identity_not_found"
    default_hint = "create, import, publish or resolve the identity first"


class RecipientNotAuthorizedError(ShareError):
    code = "recipient_not_authorized"
    default_hint = "this identity is not a recipient of the share; ask the owner to share with it"


class KeyUnwrapFailedError(ShareError):
    code = "key_unwrap_failed"
    default_hint = "the share could not be opened with this identity's key"


class ShareExpiredError(ShareError):
    code = "share_expired"
    default_hint = "ask the owner for a new share"


class ShareRevokedError(ShareError):
    code = "share_revoked"
    default_hint = "the owner revoked this share; ask them for a new one"


class ShareReplacedError(ShareRevokedError):
    """A revoked share whose issuer re-issued it to this opener: ``replaced_by`` is the
    capsule to open instead (docs/spec/capsule.md section 1.7)."""

    code = "share_replaced"
    default_hint = "open the capsule that replaced it instead"

    def __init__(
        self,
        message: str,
        *,
        replaced_by: str | None = None,
        hint: str | None = None,
        reason: str | None = None,
        subject: str | None = None,
    ) -> None:
        # Constructible from its message alone, as every error (and unpickling) needs.
        if hint is None and replaced_by is not None:
            hint = f"open {replaced_by} instead"
        super().__init__(
            message,
            hint=hint,
            reason="replaced" if replaced_by is not None and reason is None else reason,
            subject=replaced_by if subject is None else subject,
        )
        self.replaced_by = replaced_by


class PolicyProviderRequiredError(ShareError):
    code = "policy_provider_required"
    default_hint = "install and configure the policy provider the share names"


class PolicyDeniedError(ShareError):
    code = "policy_denied"
    default_hint = "the share's policy refused this open"


class CapabilityRequiredError(ShareError):
    code = "capability_required"
    default_hint = "pass a capability token for this share, issued by the identity it names"


class CapabilityInvalidError(ShareError):
    code = "capability_invalid"
    default_hint = "the capability is wrong, expired, or for another share; ask for a new one"


class RevocationUnavailableError(ShareError):
    """The issuer's revocation list could not be checked, and the staleness rule says an
    open must not go ahead without it (fail closed)."""

    code = "revocation_unavailable"
    default_hint = (
        "retry when the issuer's node is reachable, or allow a recently checked list with "
        "max_staleness"
    )


class DownloadNotAllowedError(ShareError):
    """The owner shared the file for viewing only (``allow_download=False``). This is
    advice to honest clients: one that ignores it still has the plaintext it decrypted."""

    code = "download_not_allowed"
    default_hint = "the owner shared this file for viewing only; read it without saving"


def error_class(code: str) -> type[IpfsShareError]:
    """The error class whose ``code`` is ``code`` (the root for a code nobody defines):
    how an error that crossed a process boundary as JSON becomes typed again.

    >>> error_class("share_revoked").__name__, error_class("no_such_code").__name__
    ('ShareRevokedError', 'IpfsShareError')
    """
    todo: list[type[IpfsShareError]] = [IpfsShareError]
    while todo:
        cls = todo.pop()
        if cls.__dict__.get("code") == code:
            return cls
        todo.extend(cls.__subclasses__())
    return IpfsShareError
