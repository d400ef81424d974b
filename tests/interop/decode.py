#!/usr/bin/env python3
"""Read Avro single-object messages with nothing but the .avsc files.

Usage: decode.py DIR [SCHEMAS_DIR]

Every file DIR/*.bin is one message: C3 01, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then
the Avro binary body. The writer schema is found by fingerprint among
SCHEMAS_DIR/*.avsc and SCHEMAS_DIR/history/*.avsc (default: the repository's
schemas/). Prints one JSON line per message:
{"file": ..., "topic": ..., "record": ...}; dates as YYYY-MM-DD, timestamps
as ISO 8601, bytes and fixed as hex, a union of records as [name, record].
Exits 1 on a bad magic, an unknown fingerprint or a body that does not decode
exactly. Other readers (kafka_decided.py) import load_schemas, decode and plain.
"""

import datetime
import io
import json
import pathlib
import sys

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
# The repository's schemas/, the default SCHEMAS_DIR.
SCHEMAS = pathlib.Path(__file__).resolve().parent.parent.parent / "schemas"

# CRC-64-AVRO, straight from the Avro specification ("Schema Fingerprints"),
# to cross-check fastavro's.
_EMPTY = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY & -(_fp & 1))
    _TABLE.append(_fp)


def rabin(data: bytes) -> bytes:
    fp = _EMPTY
    for b in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return fp.to_bytes(8, "little")


def load_schemas(root: pathlib.Path):
    """fingerprint (8 bytes) -> (topic, parsed schema)."""
    known = {}
    for path in sorted(root.glob("*.avsc")) + sorted(root.glob("history/*.avsc")):
        with open(path, encoding="utf-8") as fh:
            schema = json.load(fh)
        canonical = to_parsing_canonical_form(schema)
        fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        if fp != rabin(canonical.encode("utf-8")):
            sys.exit(f"{path.name}: fastavro and the spec's Rabin disagree")
        known[fp] = (path.name[: -len(".avsc")], fastavro.parse_schema(schema))
    return known


def plain(value):
    """A decoded Avro value as plain JSON."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


class Undecodable(ValueError):
    """A message that is not one of ours: the reason is its text."""


def decode(known, data: bytes):
    """One single-object message -> (schema name, decoded record), or Undecodable."""
    if len(data) < 10 or data[:2] != MAGIC:
        raise Undecodable("not a single-object message")
    entry = known.get(data[2:10])
    if entry is None:
        raise Undecodable(f"unknown fingerprint {data[2:10].hex()}")
    name, schema = entry
    body = io.BytesIO(data[10:])
    try:
        record = fastavro.schemaless_reader(
            body,
            schema,
            None,
            return_record_name=True,
            return_record_name_override=True,
        )
    except Exception as e:  # fastavro raises several kinds on a bad body
        raise Undecodable(f"body does not decode as {name}: {e!r}") from e
    if body.tell() != len(data) - 10:
        raise Undecodable(f"{len(data) - 10 - body.tell()} trailing bytes")
    return name, record


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    messages = pathlib.Path(sys.argv[1])
    schemas = pathlib.Path(sys.argv[2]) if len(sys.argv) == 3 else SCHEMAS
    known = load_schemas(schemas)
    status = 0
    for path in sorted(messages.glob("*.bin")):
        try:
            topic, record = decode(known, path.read_bytes())
        except Undecodable as e:
            print(f"{path.name}: {e}", file=sys.stderr)
            status = 1
            continue
        print(json.dumps({"file": path.name, "topic": topic, "record": plain(record)}, ensure_ascii=False))
    return status


if __name__ == "__main__":
    sys.exit(main())
