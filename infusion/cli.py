"""``infusion``: the operator's command line. It sits above the chassis, the services and the gateway.

    infusion dlq list [--json]                  dead letters: what failed, where, why, how often
    infusion dlq replay ID                      send one dead letter back where it came from
    infusion dlq replay --all [--handler H] [--event-type T] [--error TEXT]
                                                send back every dead letter matching the filters
    infusion outbox list [--service]            events written but not yet published
    infusion health SERVICE [--timeout S]       exit 0 when the service answers its health RPC in time
    infusion token --role R --sub ID            a bearer token signed with the gateway's configured key

Settings come from the environment (``AMQP_URI``, ``MONGO_URI``, ``DATABASE_PREFIX``,
``DEAD_LETTER_QUEUE``) with the same defaults as the services; ``token`` reads the gateway's own
``config.yml`` (``JWT_*``, with the same environment overrides), so it signs exactly as the gateway checks.
Services add their own commands through a ``commands.register(subcommands)`` function (``SERVICE_COMMANDS``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import warnings
from dataclasses import asdict
from typing import Any

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # noise for an operator

from chassis.topology import DEFAULT_DEAD_LETTER_QUEUE  # noqa: E402

DEFAULT_AMQP_URI = "pyamqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MONGO_URI = "mongodb://127.0.0.1:27017/?directConnection=true"

#: The services whose databases may hold outboxes (each database is named after its service).
SERVICES = ("intake", "scheduling", "billing", "notifications")
#: Modules whose ``register(subcommands)`` adds a service's own commands (e.g. billing's ``ledger check``).
SERVICE_COMMANDS: tuple[str, ...] = ()


def _settings() -> dict[str, Any]:
    return {
        "AMQP_URI": os.environ.get("AMQP_URI", DEFAULT_AMQP_URI),
        "MONGO_URI": os.environ.get("MONGO_URI", DEFAULT_MONGO_URI),
        "DATABASE_PREFIX": os.environ.get("DATABASE_PREFIX", ""),
        "DEAD_LETTER_QUEUE": os.environ.get("DEAD_LETTER_QUEUE", DEFAULT_DEAD_LETTER_QUEUE),
    }


def _dlq_list(args: argparse.Namespace) -> int:
    from chassis.dlq import DeadLetterQueue

    settings = _settings()
    letters = DeadLetterQueue(settings["AMQP_URI"], settings["DEAD_LETTER_QUEUE"]).list()
    if args.json:
        print(json.dumps([asdict(letter) for letter in letters], indent=2, default=str))
        return 0
    if not letters:
        print("no dead letters")
        return 0
    for letter in letters:
        print(f"{letter.dead_letter_id}  {letter.dead_lettered_at}  {letter.event_type}  {letter.event_id}  "
              f"{letter.service}.{letter.handler}  attempts={letter.attempts}\n    {letter.error}")
    return 0


def _dlq_replay(args: argparse.Namespace) -> int:
    from chassis.dlq import DeadLetterQueue, Selection

    if (args.id is None) == (not args.all):
        print("name one dead letter ID, or --all (with optional filters)", file=sys.stderr)
        return 2
    if args.id is not None and (args.handler or args.event_type or args.error):
        print("filters go with --all", file=sys.stderr)
        return 2
    settings = _settings()
    queue = DeadLetterQueue(settings["AMQP_URI"], settings["DEAD_LETTER_QUEUE"])
    selection = Selection(dead_letter_id=args.id, handler=args.handler, event_type=args.event_type, error=args.error)
    replayed = 0
    for letter in queue.replay_matching(selection):
        replayed += 1
        destination = letter.original_queue or f"{letter.original_exchange} ({letter.routing_key})"
        print(f"replayed {letter.dead_letter_id} ({letter.event_type} {letter.event_id}) to {destination}", flush=True)
    if args.id is not None and not replayed:
        print(f"no dead letter {args.id}", file=sys.stderr)
        return 1
    if args.all:
        print(f"{replayed} dead letter(s) replayed")
    return 0


def _health(args: argparse.Namespace) -> int:
    """Ask a service's ``health`` RPC (the container probes' check): 0 when it answers in time."""
    from nameko.standalone.rpc import ServiceRpcProxy

    settings = _settings()
    try:
        with ServiceRpcProxy(args.service, {"AMQP_URI": settings["AMQP_URI"]}, timeout=args.timeout) as service:
            answer = service.health()
    except Exception as exc:
        print(f"{args.service}: unhealthy ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    print(f"{args.service}: {answer.get('status', answer)}")
    return 0


def _outbox_list(args: argparse.Namespace) -> int:
    from chassis.outbox import OutboxRelay
    from chassis.store import connect

    settings = _settings()
    services = [args.service] if args.service else list(SERVICES)
    total = 0
    for service in services:
        client, db = connect(settings, service)
        with client:  # every collection of the service's database: whichever holds outboxes shows them
            relay = OutboxRelay(db, db.list_collection_names(), publish=lambda event: None)
            for entry in relay.pending():
                total += 1
                print(f"{service}  {entry['collection']}/{entry['document_id']}  {entry['event']['type']}  "
                      f"{entry['event_id']}  attempts={entry.get('attempts', 0)}  {entry.get('last_error', '')}")
    if not total:
        print("no pending events")
    return 0


def _token(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml
    from nameko.cli.main import setup_yaml_parser

    import gateway
    from gateway.auth import ROLES, AuthSettings, mint_token

    if args.role not in ROLES:
        print(f"unknown role {args.role!r}; one of {', '.join(ROLES)}", file=sys.stderr)
        return 2
    setup_yaml_parser()
    config_path = Path(args.config) if args.config else Path(gateway.__file__).parent / "config.yml"
    config = yaml.safe_load(config_path.read_text())
    try:
        settings = AuthSettings.from_config({**config, "JWT_PRIVATE_KEY": os.environ.get("JWT_PRIVATE_KEY")})
        print(mint_token(settings, args.sub, args.role, ttl_seconds=args.ttl))
    except ValueError as exc:
        print(f"cannot mint a token: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infusion", description="Operator commands for the infusion platform")
    commands = parser.add_subparsers(dest="command", required=True)

    dlq = commands.add_parser("dlq", help="the dead-letter queue").add_subparsers(dest="action", required=True)
    listing = dlq.add_parser("list", help="list dead letters")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_dlq_list)
    replay = dlq.add_parser("replay", help="send dead letters back where they came from")
    replay.add_argument("id", nargs="?", help="the dead letter id shown by 'infusion dlq list'")
    replay.add_argument("--all", action="store_true", help="every dead letter matching the filters")
    replay.add_argument("--handler", help="only this handler (method, or service.method)")
    replay.add_argument("--event-type", help="only events of this type, e.g. appointment.booked")
    replay.add_argument("--error", help="only letters whose error contains this text")
    replay.set_defaults(run=_dlq_replay)

    health = commands.add_parser("health", help="whether a service answers (for container health checks)")
    health.add_argument("service", choices=sorted(SERVICES))
    health.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")
    health.set_defaults(run=_health)

    outbox = commands.add_parser("outbox", help="events not yet published").add_subparsers(
        dest="action", required=True)
    pending = outbox.add_parser("list", help="list pending events")
    pending.add_argument("--service", choices=sorted(SERVICES))
    pending.set_defaults(run=_outbox_list)

    minting = commands.add_parser("token", help="mint a bearer token for operators and tests")
    minting.add_argument("--role", required=True, help="patient, clinician, nurse, finance or admin")
    minting.add_argument("--sub", required=True, help="the subject: a patient id, a nurse id, a staff id")
    minting.add_argument("--ttl", type=int, default=None, help="lifetime in seconds (default JWT_TTL_SECONDS)")
    minting.add_argument("--config", help="the gateway's config.yml (default: the installed one)")
    minting.set_defaults(run=_token)

    for module in SERVICE_COMMANDS:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from kombu.exceptions import OperationalError
    from pymongo.errors import PyMongoError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (PyMongoError, OperationalError, ConnectionError) as exc:
        print(f"infusion: cannot reach the broker or the store ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
