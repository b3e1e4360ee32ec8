"""Benchmark (not a test): rows per second and peak memory of a finance export made row by row.

``python -m services.billing.bench.export_memory 10000 100000`` builds that many journal entries lazily (as the
store's cursor yields them), encodes the ledger export as CSV and JSON lines, and prints rows per second and the
peak of Python memory allocated while streaming (tracemalloc). Flat memory means the peak does not grow with
the number of rows.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from services.billing import exports, ledger

START = datetime(2026, 1, 1, tzinfo=UTC)


def entries(count: int) -> Iterator[dict]:
    for n in range(count):
        yield ledger.balance_received(f"pi_{n}", f"inv_{n}", f"pat_{n % 500}", 45000, 1335, "usd",
                                      START + timedelta(seconds=30 * n), f"ch_{n}")


def measure(count: int, kind: str, fmt: str) -> dict:
    tracemalloc.start()
    started = time.perf_counter()
    rows = 0
    size = 0
    for chunk in exports.encoded(kind, fmt, exports.rows(kind, entries(count))):
        size += len(chunk)
        rows += chunk.count("\n")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"entries": count, "kind": kind, "format": fmt, "rows": rows, "rows_per_second": round(rows / elapsed),
            "peak_kib": round(peak / 1024), "output_mib": round(size / 2**20, 1)}


def main(argv: list[str]) -> None:
    for count in [int(arg) for arg in argv] or [10_000, 100_000]:
        for kind, fmt in (("ledger", "csv"), ("payments", "jsonl"), ("daily-revenue", "csv")):
            print(measure(count, kind, fmt))


if __name__ == "__main__":
    main(sys.argv[1:])
