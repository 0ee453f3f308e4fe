"""Rebuild dag-cbor-positive.json from the fetched sources, checking every byte by its CID.

Sources (see README.md):
- names.tsv: fixture name -> dag-cbor CID, transcribed from the ipld/ipld listing;
- listing-hex.tsv: hex of the fixtures with no other local copy, from the same listing;
- a folder of ``<cid>.dag-cbor`` block files (a codec-fixtures checkout's fixtures/*/,
  or the copy vendored by the polydawn/refmt Go module, the default below).

A block is used only if sha2-256 of its bytes gives the CID the listing names, so a
transcription slip or a wrong file fails loudly instead of becoming a fixture.

    .venv/bin/python tests/data/codec-fixtures/regenerate.py [--blocks DIR ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ipfs_share.formats.cid import DAG_CBOR, cid_for

HERE = Path(__file__).resolve().parent
DEFAULT_BLOCKS = Path(
    "/root/go/pkg/mod/github.com/polydawn/refmt@v0.90.0/cbor/testdata/fuzz_corpus/codec_fixtures"
)


def read_tsv(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("\t")
            rows.append((name, value))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--blocks",
        type=Path,
        action="append",
        default=None,
        help="folder searched (recursively) for <cid>.dag-cbor files",
    )
    args = parser.parse_args()
    folders = args.blocks or [DEFAULT_BLOCKS]

    by_cid: dict[str, bytes] = {}
    for folder in folders:
        for path in folder.rglob("*.dag-cbor"):
            by_cid[path.name.removesuffix(".dag-cbor")] = path.read_bytes()
    for name, hexdata in read_tsv(HERE / "listing-hex.tsv"):
        data = bytes.fromhex(hexdata)
        by_cid[cid_for(DAG_CBOR, data)] = data

    fixtures: list[dict[str, str]] = []
    missing: list[str] = []
    for name, cid in read_tsv(HERE / "names.tsv"):
        found = by_cid.get(cid)
        if found is None:
            missing.append(name)
            continue
        if cid_for(DAG_CBOR, found) != cid:
            print(f"regenerate: {name}: bytes do not hash to {cid}", file=sys.stderr)
            return 1
        fixtures.append({"name": name, "cid": cid, "hex": found.hex()})
    if missing:
        print(f"regenerate: no bytes for {len(missing)} fixtures: {missing}", file=sys.stderr)
        return 1
    out = HERE / "dag-cbor-positive.json"
    out.write_text(json.dumps(fixtures, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"regenerate: wrote {len(fixtures)} fixtures to {out.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
