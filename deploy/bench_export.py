"""How fast finance exports stream through the real processes, and what memory they take: ``GET
/v1/exports/ledger?format=csv`` and ``GET /v1/exports/payments?format=jsonl`` over a journal of N entries
(gateway -> billing by RPC, page by page).

    .venv/bin/python deploy/bench_export.py            # BENCH_EXPORT_SIZES=1000,5000, BENCH_VHOST=existing

Starts a throwaway store (in memory) and a fresh RabbitMQ vhost like ``make bench``; writes the journal entries
straight into billing's store (``insert_many`` in batches: thousands of payments through Stripe's stand-in would
measure the stand-in), each made by ``services.billing.ledger`` exactly as billing makes them (deposits,
invoices, balances, package sales); then streams each export once with one client and measures rows per second
and the resident memory of the gateway and billing while it streams (sampled every 20 ms from /proc, or psutil
when installed; ``VmHWM`` is the process's peak since it started). Sizes are cumulative (the second adds entries
to the first). Results are printed and written to ``.data/bench_export.json``. Sizes stay small on purpose:
mongoeco slows down as collections grow.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pymongo
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.bench import MANAGEMENT, SECRET, bearer, free_port, fresh_vhost  # noqa: E402
from deploy.processes import ROOT, Platform, default_env  # noqa: E402
from services.billing import ledger  # noqa: E402

SIZES = [int(size) for size in os.environ.get("BENCH_EXPORT_SIZES", "1000,5000").split(",")]
BATCH = 500
PREFIX = "bench_ex_"
EXPORTS = (("ledger", "csv"), ("payments", "jsonl"))


def journal_entries(first: int, count: int, now: datetime) -> list[dict]:
    """``count`` entries numbered from ``first``, spread over the last 20 days: a deposit, its invoice, its
    balance, and now and then a package sold (shaped as billing writes them, outbox included)."""
    made = []
    for n in range(first, first + count):
        at = now - timedelta(days=20) + timedelta(seconds=(n * 97) % (20 * 86400))
        patient, visit = f"pat_bench_{n % 400:03d}", n // 3
        if n % 25 == 24:
            entry = ledger.package_sold(f"pi_pkg_{n}", f"pkg_{n}", patient, 302500, 8800, "usd", at, f"ch_pkg_{n}")
        elif n % 3 == 0:
            entry = ledger.deposit_received(f"pi_dep_{n}", f"hld_{visit}", patient, 15000, 465, "usd", at,
                                            f"ch_dep_{n}")
        elif n % 3 == 1:
            entry = ledger.invoice_opened(f"inv_{n}", patient, 60000, 15000, f"hld_{visit}", "usd", at)
        else:
            entry = ledger.balance_received(f"pi_bal_{n}", f"inv_{n}", patient, 45000, 1335, "usd", at,
                                            f"ch_bal_{n}")
        made.append({**entry, "outbox": []})
    return made


def rss_kib(pid: int) -> tuple[int, int]:
    """(resident now, peak resident since start) of a process, in KiB."""
    try:
        import psutil
    except ImportError:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    info = psutil.Process(pid).memory_info()
    return info.rss // 1024, getattr(info, "peak_wset", info.rss) // 1024


class MemorySampler:
    """The highest resident size of each process while a block runs, sampled every ``every`` seconds."""

    def __init__(self, pids: dict[str, int], every: float = 0.02) -> None:
        self.pids, self.every = pids, every
        self.before = {name: rss_kib(pid)[0] for name, pid in pids.items()}
        self.peak = dict(self.before)
        self._stop = threading.Event()

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_kib(pid)[0])

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.high_water = {name: rss_kib(pid)[1] for name, pid in self.pids.items()}


def stream(url: str, kind: str, fmt: str, date_from: str, date_to: str, pids: dict[str, int]) -> dict:
    """One export streamed to the end (rows counted as lines, the CSV header left out)."""
    rows, size = 0, 0
    with MemorySampler(pids) as memory:
        started = time.perf_counter()
        with requests.get(f"{url}/v1/exports/{kind}", params={"from": date_from, "to": date_to, "format": fmt},
                          headers=bearer("finance", "bench-finance"), stream=True, timeout=600) as answer:
            answer.raise_for_status()
            for chunk in answer.iter_content(chunk_size=65536):
                rows += chunk.count(b"\n")
                size += len(chunk)
        elapsed = time.perf_counter() - started
    rows -= 1 if fmt == "csv" else 0
    mib = 1 / 1024
    return {"export": f"{kind} ({fmt})", "rows": rows, "seconds": round(elapsed, 2),
            "rows_per_second": round(rows / elapsed), "bytes": size,
            **{f"{name}_rss_before_mib": round(memory.before[name] * mib, 1) for name in pids},
            **{f"{name}_rss_peak_mib": round(memory.peak[name] * mib, 1) for name in pids},
            **{f"{name}_vmhwm_mib": round(memory.high_water[name] * mib, 1) for name in pids}}


def table(results: list[dict]) -> None:
    print(f"\n{'entries':>7}  {'export':<17} {'rows':>7} {'s':>7} {'rows/s':>8}  "
          f"{'gateway MiB (before -> peak, HWM)':<34} {'billing MiB (before -> peak, HWM)':<34}")
    for r in results:
        gateway = f"{r['gateway_rss_before_mib']} -> {r['gateway_rss_peak_mib']}, {r['gateway_vmhwm_mib']}"
        billing = f"{r['billing_rss_before_mib']} -> {r['billing_rss_peak_mib']}, {r['billing_vmhwm_mib']}"
        print(f"{r['entries']:>7}  {r['export']:<17} {r['rows']:>7} {r['seconds']:>7} {r['rows_per_second']:>8}  "
              f"{gateway:<34} {billing:<34}")


def retried(call, attempts: int = 5):
    """A call to RabbitMQ's management API, again after a dropped connection (a busy shared broker); only for
    calls that can be repeated (not the creation of a vhost)."""
    for attempt in range(attempts):
        try:
            return call()
        except requests.RequestException:
            if attempt == attempts - 1:
                raise
            time.sleep(2)


def main() -> int:
    if os.environ.get("BENCH_VHOST"):  # a vhost made beforehand (when the broker is slow to make new ones)
        vhost = os.environ["BENCH_VHOST"]
        amqp_uri = f"pyamqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
    else:
        vhost, amqp_uri = fresh_vhost("bench_ex_")
    env = {**default_env(), "AMQP_URI": amqp_uri, "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}",
           "JWT_SECRET": SECRET, "DATABASE_PREFIX": PREFIX, "RATE_LIMIT_DEFAULT": "100000/60",
           "LOG_LEVEL": "WARNING"}
    platform = Platform(env, Path(tempfile.mkdtemp(prefix="bench-export-logs-")))
    results: list[dict] = []
    try:
        mongo_uri = platform.start_store(free_port(), None)
        platform.start_all()
        platform.wait_until_ready()
        pids = {name: platform.processes[name].pid for name in ("gateway", "billing")}
        now = datetime.now(UTC)
        date_from, date_to = (now - timedelta(days=30)).date().isoformat(), now.date().isoformat()
        written = 0
        with pymongo.MongoClient(mongo_uri, tz_aware=True) as client:
            journal = client[PREFIX + "billing"].journal
            for size in SIZES:
                started = time.perf_counter()
                for first in range(written, size, BATCH):
                    journal.insert_many(journal_entries(first, min(BATCH, size - first), now))
                written = max(written, size)
                print(f"{journal.count_documents({})} journal entries "
                      f"(stored in {time.perf_counter() - started:.0f} s)", flush=True)
                for kind, fmt in EXPORTS:
                    result = {"entries": written, **stream(platform.url, kind, fmt, date_from, date_to, pids)}
                    print(f"  {result['export']}: {result['rows']} rows in {result['seconds']} s", flush=True)
                    results.append(result)
        table(results)
        (ROOT / ".data").mkdir(exist_ok=True)
        (ROOT / ".data" / "bench_export.json").write_text(json.dumps(
            {"machine": {"cpus": os.cpu_count()}, "page_size": 100, "results": results}, indent=2))
        print("\nwritten to .data/bench_export.json")
    finally:
        platform.stop()
        retried(lambda: requests.delete(f"{MANAGEMENT}/api/vhosts/{vhost}", timeout=10))
    return 0


if __name__ == "__main__":
    sys.exit(main())
