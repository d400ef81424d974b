#!/usr/bin/env python3
"""Read a topic of ours from Kafka with confluent-kafka and decode it with the .avsc alone.

Usage: kafka_decided.py [-X NAME=VALUE]... [--timeout SECONDS] BOOTSTRAP TOPIC [SCHEMAS_DIR]

BOOTSTRAP is a broker list (127.0.0.1:9092), TOPIC the topic's name on the
broker, namespace included (NS.fse.decided). Every partition is read from its
low to its high watermark as they are at the start, committed records only
(read_committed; transaction markers take offsets and are skipped): partitions assigned
directly, no group joined, nothing committed, so the read leaves no trace on
the cluster. -X passes a librdkafka property (security settings, say).

Each value is decoded as tests/interop/decode.py does (the writer schema
found by fingerprint among SCHEMAS_DIR/*.avsc and SCHEMAS_DIR/history/*.avsc,
default the repository's schemas/). Prints one JSON line per record, in each
partition's order: {"partition", "offset", "key", "schema", "record"}; the key
as text when it is UTF-8 (else "key_hex"), the record as decode.py prints it.

Exits 1 if any record does not decode (each one named on stderr, the rest
still read), 2 on bad usage, a missing topic, a broker error or a timeout.
"""

import argparse
import json
import pathlib
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

# decode.py beside this file: one fingerprint lookup and one decoder for both readers
# (imported without leaving a __pycache__ in the checkout).
sys.dont_write_bytecode = True
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import decode  # noqa: E402


def fail(message: str) -> int:
    print(f"kafka_decided.py: {message}", file=sys.stderr)
    return 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("schemas", nargs="?", type=pathlib.Path, default=decode.SCHEMAS)
    parser.add_argument("-X", dest="properties", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--timeout", type=float, default=60.0, help="for the whole read (s)")
    args = parser.parse_args()

    config = {
        "bootstrap.servers": args.bootstrap,
        # librdkafka wants a group id even for assign(); it is never joined.
        "group.id": "clearing.interop-reader",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # The stages write in transactions: an aborted one (a fenced owner's)
        # is not theirs to read, and the markers take offsets that are never
        # handed out, so a partition's end is known by its EOF, not by a count.
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    }
    for item in args.properties:
        name, sep, value = item.partition("=")
        if not sep:
            return fail(f"-X {item}: NAME=VALUE expected")
        config[name] = value

    known = decode.load_schemas(args.schemas)
    consumer = Consumer(config)
    try:
        return read(consumer, known, args.topic, time.monotonic() + args.timeout)
    finally:
        consumer.close()


def read(consumer, known, topic: str, deadline: float) -> int:
    def left() -> float:
        return max(deadline - time.monotonic(), 0.1)

    metadata = consumer.list_topics(topic, timeout=left()).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        reason = metadata.error if metadata is not None and metadata.error else "no partitions"
        return fail(f"topic {topic}: {reason}")

    # The end of each partition as it is now: what a reader that starts now must see.
    ends = {}
    start = []
    for partition in sorted(metadata.partitions):
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=left(), cached=False
        )
        if high > low:
            ends[partition] = high
            start.append(TopicPartition(topic, partition, low))
    consumer.assign(start)

    status = 0
    while ends:
        if time.monotonic() >= deadline:
            return fail(f"{topic}: timed out short of the end offsets {dict(sorted(ends.items()))}")
        message = consumer.poll(min(left(), 1.0))
        if message is None:
            continue
        if message.error() is not None:
            if message.error().code() == KafkaError._PARTITION_EOF:
                # At the end of what is readable: past the start's end, or
                # held short of it by a transaction still open.
                if message.offset() >= ends.get(message.partition(), 0):
                    ends.pop(message.partition(), None)
                continue
            return fail(f"{topic}: {message.error()}")
        partition, offset = message.partition(), message.offset()
        end = ends.get(partition)
        if end is None or offset >= end:
            continue  # written after the start: not ours to read
        try:
            name, record = decode.decode(known, message.value() or b"")
        except decode.Undecodable as e:
            print(f"{topic}/{partition}@{offset}: {e}", file=sys.stderr)
            status = 1
        else:
            line = {"partition": partition, "offset": offset}
            key = message.key()
            try:
                line["key"] = None if key is None else key.decode("utf-8")
            except UnicodeDecodeError:
                line["key"] = None
                line["key_hex"] = key.hex()
            line["schema"] = name
            line["record"] = decode.plain(record)
            print(json.dumps(line, ensure_ascii=False))
        if offset + 1 >= end:
            del ends[partition]
    return status


if __name__ == "__main__":
    sys.exit(main())
