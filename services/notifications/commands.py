"""``infusion messages``: the operator's view of the delivery log.

    infusion messages list [--failed] [--limit N] [--json]

lists messages (newest first), or with ``--failed`` those that failed for good, each with its kind, channel,
recipient, attempts and last error. Reads ``MONGO_URI`` and ``DATABASE_PREFIX`` from the environment, with the
services' defaults. ``register(subcommands)`` adds it to the ``infusion`` command line.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from pymongo import DESCENDING

from chassis.store import connect

DEFAULT_MONGO_URI = "mongodb://127.0.0.1:27017/?directConnection=true"
COLUMNS = ("_id", "created_at", "status", "kind", "channel", "to", "attempts", "last_error")


def register(subcommands: Any) -> None:
    messages = subcommands.add_parser("messages", help="the notifications delivery log")
    actions = messages.add_subparsers(dest="messages_action", required=True)
    listing = actions.add_parser("list", help="messages, newest first")
    listing.add_argument("--failed", action="store_true", help="only those that failed for good")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=list_messages)


def list_messages(args: argparse.Namespace) -> int:
    settings = {"MONGO_URI": os.environ.get("MONGO_URI", DEFAULT_MONGO_URI),
                "DATABASE_PREFIX": os.environ.get("DATABASE_PREFIX", "")}
    client, db = connect(settings, "notifications")
    try:
        query = {"status": "failed"} if args.failed else {}
        found = list(db.messages.find(query, {column: 1 for column in COLUMNS})
                     .sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(max(1, args.limit)))
    finally:
        client.close()
    if args.json:
        print(json.dumps(found, indent=2, default=str))
        return 0
    if not found:
        print("no failed messages" if args.failed else "no messages")
        return 0
    for message in found:
        print(f"{message['_id']}  {message['created_at']:%Y-%m-%dT%H:%M:%SZ}  {message['status']}  {message['kind']}"
              f"  {message['channel']} to {message['to'] or '(no address)'}  attempts={message['attempts']}")
        if message.get("last_error"):
            print(f"    {message['last_error']}")
    return 0
