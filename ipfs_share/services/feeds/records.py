"""Keeping signed IPNS records: every record this home publishes or accepts goes into the
record store, byte for byte, so that it can be put again later without any key."""

from __future__ import annotations

from ipfs_share.formats.ipns import IpnsRecord
from ipfs_share.local.state import RecordRow
from ipfs_share.local.state.records import RecordRepository
from ipfs_share.services.feeds.refs import Feed

__all__ = ["keep_record"]


def keep_record(
    records: RecordRepository,
    feed: Feed,
    data: bytes,
    record: IpnsRecord,
    *,
    own: bool,
    at: int,
    put: bool,
) -> bool:
    """Keep ``data`` (``record`` is its verified parse) as the record of ``feed`` unless
    a newer one is kept; ``put``: it was just stored on the node. True if kept."""
    return records.keep(
        RecordRow(
            name=feed.name,
            kind=feed.kind.name,
            whose=feed.signer,
            own=own,
            seq=record.sequence,
            eol=int(record.validity.timestamp()),
            value=record.value,
            record=bytes(data),
            kept_at=at,
            put_at=at if put else None,
            outcome="published" if own and put else None,
        )
    )
