"""Billing's operator commands for the ``infusion`` command line: ``ledger check``, ``export``, ``reconcile``.

``register(subcommands)`` adds them to the top-level parser's subparsers; each sets ``run`` to a function taking
the parsed arguments and returning the exit status. They read ``MONGO_URI``, ``DATABASE_PREFIX`` and
``AMQP_URI`` from the environment, with the services' defaults. ``export`` and ``reconcile`` ask billing by RPC
(the same pages the gateway streams); ``ledger check`` reads the journal directly, one entry at a time.

``export`` writes the export, and nothing else, on standard output (or ``-o``); on standard error it shows a
progress bar while standard error is a terminal (journal entries read out of the total billing counts with the
first page: tqdm's bar when tqdm is installed, else a plain one), and always ends with the number of rows written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from typing import Any, TextIO

from services.billing import exports, ledger

DEFAULT_MONGO_URI = "mongodb://127.0.0.1:27017/?directConnection=true"
DEFAULT_AMQP_URI = "pyamqp://guest:guest@127.0.0.1:5672/"


def register(subcommands: Any) -> None:
    ledger_parser = subcommands.add_parser("ledger", help="billing's double-entry ledger")
    ledger_commands = ledger_parser.add_subparsers(dest="ledger_command", required=True)
    check = ledger_commands.add_parser("check", help="verify every journal entry and the whole ledger sum to zero")
    check.set_defaults(run=ledger_check)

    export = subcommands.add_parser("export", help="stream a finance export (CSV or JSON lines)")
    export.add_argument("kind", choices=exports.KINDS)
    export.add_argument("--from", dest="date_from", required=True, type=date.fromisoformat, help="first UTC day")
    export.add_argument("--to", dest="date_to", required=True, type=date.fromisoformat, help="last UTC day")
    export.add_argument("--format", choices=tuple(exports.FORMATS), default="csv")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(run=export_command)

    reconcile = subcommands.add_parser("reconcile", help="compare the ledger with Stripe's balance transactions")
    reconcile.add_argument("--from", dest="date_from", required=True, type=date.fromisoformat)
    reconcile.add_argument("--to", dest="date_to", required=True, type=date.fromisoformat)
    reconcile.add_argument("--json", action="store_true", help="print the differences as JSON")
    reconcile.set_defaults(run=reconcile_command)


def _journal() -> Any:
    import pymongo

    client = pymongo.MongoClient(os.environ.get("MONGO_URI", DEFAULT_MONGO_URI), tz_aware=True)
    return client[os.environ.get("DATABASE_PREFIX", "") + "billing"].journal


def _rpc_config() -> dict[str, str]:
    return {"AMQP_URI": os.environ.get("AMQP_URI", DEFAULT_AMQP_URI)}


def ledger_check(args: argparse.Namespace) -> int:
    """0 when every entry and the whole ledger sum to zero; 1, naming each problem, otherwise."""
    journal = _journal()
    count = journal.count_documents({})
    found = ledger.problems(journal.find({}, {"outbox": 0}).sort([("posted_at", 1), ("_id", 1)]))
    for problem in found:
        print(problem)
    print(f"{count} journal entries; " + ("the ledger balances" if not found else f"{len(found)} problem(s)"))
    return 1 if found else 0


class PlainBar:
    """A progress bar in one line of a terminal, redrawn at most ten times a second (when tqdm is missing)."""

    WIDTH = 30

    def __init__(self, stream: TextIO, total: int | None, label: str, unit: str) -> None:
        self.stream, self.total, self.label, self.unit = stream, total, label, unit
        self.done, self.started, self.drawn_at = 0, time.monotonic(), 0.0

    def update(self, amount: int) -> None:
        self.done += amount
        if time.monotonic() - self.drawn_at >= 0.1:
            self._draw()

    def _draw(self) -> None:
        self.drawn_at = time.monotonic()
        rate = self.done / max(self.drawn_at - self.started, 1e-9)
        if self.total:
            filled = min(self.WIDTH, self.WIDTH * self.done // self.total)
            bar = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {100 * self.done // self.total:3d}% "
            count = f"{self.done:,}/{self.total:,}"
        else:
            bar, count = "", f"{self.done:,}"
        self.stream.write(f"\r{self.label}: {bar}{count} {self.unit} ({rate:,.0f}/s)")
        self.stream.flush()

    def close(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()


def progress_bar(stream: TextIO, total: int | None, label: str, unit: str = "entries") -> Any:
    """tqdm's bar when tqdm is installed, else ``PlainBar``: both take ``update(n)`` and ``close()``."""
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainBar(stream, total, label, unit)
    return tqdm(total=total, desc=label, unit=f" {unit}", unit_scale=False, file=stream, dynamic_ncols=True,
                leave=True, mininterval=0.1)


class ExportProgress:
    """The export's progress on ``stream`` (standard error): a bar of journal entries read, shown only when the
    stream is a terminal (``bar``: True or False to decide), then one line with the rows written."""

    def __init__(self, stream: TextIO, kind: str, bar: bool | None = None,
                 make_bar: Any = progress_bar) -> None:
        self.stream, self.kind = stream, kind
        self.show_bar = stream.isatty() if bar is None else bar
        self.make_bar = make_bar
        self.bar: Any = None

    def started(self, total_entries: int | None) -> None:
        if self.show_bar:
            self.bar = self.make_bar(self.stream, total_entries, self.kind)

    def read(self, entries: int) -> None:
        if self.bar is not None:
            self.bar.update(entries)

    def finished(self, rows: int) -> None:
        if self.bar is not None:
            self.bar.close()
        self.stream.write(f"{self.kind}: {rows:,} rows written\n")
        self.stream.flush()


def export_pages(billing: Any, kind: str, date_from: date, date_to: date,
                 progress: ExportProgress | None = None) -> Any:
    """The rows of an export, page by page from billing (one page in memory at a time); ``progress`` is told
    the total billing counts with the first page and the entries each page read."""
    cursor = None
    while True:
        page = billing.export_page(kind, date_from.isoformat(), date_to.isoformat(), cursor=cursor, limit=100)
        if progress is not None and cursor is None:
            progress.started(page.get("total_entries"))
        yield from page["rows"]
        if progress is not None:
            progress.read(page.get("entries", len(page["rows"])))
        cursor = page["next_cursor"]
        if cursor is None:
            return


def write_export(rows: Any, kind: str, fmt: str, out: TextIO, progress: ExportProgress | None = None) -> int:
    """Write the rows encoded as ``fmt``; the number of rows (also told to ``progress`` at the end)."""
    written = 0

    def counted() -> Any:
        nonlocal written
        for row in rows:
            written += 1
            yield row

    for chunk in exports.encoded(kind, fmt, counted()):
        out.write(chunk)
    if progress is not None:
        progress.finished(written)
    return written


def export_command(args: argparse.Namespace) -> int:
    from nameko.standalone.rpc import ClusterRpcProxy

    progress = ExportProgress(sys.stderr, args.kind)
    with ClusterRpcProxy(_rpc_config()) as rpc:
        rows = export_pages(rpc.billing, args.kind, args.date_from, args.date_to, progress=progress)
        if args.output:
            with open(args.output, "w", newline="") as out:
                write_export(rows, args.kind, args.format, out, progress=progress)
        else:
            write_export(rows, args.kind, args.format, sys.stdout, progress=progress)
    return 0


def reconcile_command(args: argparse.Namespace) -> int:
    """0 when the ledger and Stripe agree for the range; 1, listing every difference, otherwise."""
    from nameko.standalone.rpc import ClusterRpcProxy

    with ClusterRpcProxy(_rpc_config()) as rpc:
        answer = rpc.billing.reconcile(args.date_from.isoformat(), args.date_to.isoformat())
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        for difference in answer["differences"]:
            print(f"{difference['problem']:<18} {difference['source']}: "
                  f"stripe {difference.get('stripe_amount_cents', difference.get('stripe_fee_cents'))}, "
                  f"ledger {difference.get('ledger_amount_cents', difference.get('ledger_fee_cents'))}")
        print(f"{answer['stripe_transactions']} Stripe balance transactions; "
              f"{len(answer['differences'])} difference(s)")
    return 1 if answer["differences"] else 0
