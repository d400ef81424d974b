#!/usr/bin/env python3
"""What one commit's fdatasync costs on this disk, by how the log's file grows.

Appends a 700-byte record (an FSE event's size) and fdatasyncs it, N times, in
three files: one that grows with each append (the local log before commit dd7f800, 2026-12-03),
one preallocated with fallocate (the local log now: docs/performance.md, "What one fdatasync costs"),
and one pre-zeroed by writing. Prints the latency percentiles and the CPU
time per sync. Usage: scripts/fsync-cost.py [N] [ROUNDS] [DIR] (DIR on the
disk to measure; default the current directory).
"""
import os
import sys
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
DIR = sys.argv[3] if len(sys.argv) > 3 else "."
RECORD = b"x" * 700


def run(mode):
    path = os.path.join(DIR, f"fsync-cost-{mode}.tmp")
    if os.path.exists(path):
        os.remove(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    size = N * len(RECORD) + 4096
    if mode == "preallocated":
        os.posix_fallocate(fd, 0, size)
        os.fsync(fd)
    elif mode == "pre-zeroed":
        os.write(fd, b"\0" * size)
        os.fsync(fd)
        os.lseek(fd, 0, os.SEEK_SET)
    latencies = []
    cpu = time.process_time()
    for _ in range(N):
        os.write(fd, RECORD)
        start = time.perf_counter()
        os.fdatasync(fd)
        latencies.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    os.close(fd)
    os.remove(path)
    latencies.sort()
    ms = lambda q: latencies[min(N - 1, int(N * q))] * 1e3
    print(
        f"{mode:13s} p50 {ms(0.5):.3f} ms  p99 {ms(0.99):.3f} ms  max {latencies[-1] * 1e3:.2f} ms"
        f"  mean {sum(latencies) / N * 1e3:.3f} ms  CPU {cpu / N * 1e6:.0f} µs per append+sync"
    )


for _ in range(ROUNDS):
    for mode in ("growing", "preallocated", "pre-zeroed"):
        run(mode)
