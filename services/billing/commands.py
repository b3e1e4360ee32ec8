"""Billing's operator commands for the ``infusion`` command line: ``ledger check``, ``export``, ``reconcile``.

``register(subcommands)`` adds them to the top-level parser's subparsers; each sets ``run`` to a function taking
the parsed arguments and returning the exit status. They read ``MONGO_URI``, ``DATABASE_PREFIX`` and
``AMQP_URI`` from the environment, with the services' defaults. ``export`` and ``reconcile`` ask billing by RPC
(the same pages the gateway streams); ``ledger check`` reads the journal directly, one entry at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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


def export_pages(billing: Any, kind: str, date_from: date, date_to: date) -> Any:
    """The rows of an export, page by page from billing (one page in memory at a time)."""
    cursor = None
    while True:
        page = billing.export_page(kind, date_from.isoformat(), date_to.isoformat(), cursor=cursor, limit=100)
        yield from page["rows"]
        cursor = page["next_cursor"]
        if cursor is None:
            return


def write_export(rows: Any, kind: str, fmt: str, out: TextIO, progress: TextIO | None = None) -> int:
    """Write the rows encoded as ``fmt``; a running count of rows on ``progress``. The number of rows."""
    written = 0

    def counted() -> Any:
        nonlocal written
        for row in rows:
            written += 1
            if progress is not None and written % 1000 == 0:
                progress.write(f"\r{kind}: {written:,} rows")
                progress.flush()
            yield row

    for chunk in exports.encoded(kind, fmt, counted()):
        out.write(chunk)
    if progress is not None:
        progress.write(f"\r{kind}: {written:,} rows written\n")
    return written


def export_command(args: argparse.Namespace) -> int:
    from nameko.standalone.rpc import ClusterRpcProxy

    with ClusterRpcProxy(_rpc_config()) as rpc:
        rows = export_pages(rpc.billing, args.kind, args.date_from, args.date_to)
        if args.output:
            with open(args.output, "w", newline="") as out:
                write_export(rows, args.kind, args.format, out, progress=sys.stderr)
        else:
            write_export(rows, args.kind, args.format, sys.stdout, progress=sys.stderr)
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
