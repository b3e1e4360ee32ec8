"""Runs mongoeco, a server that speaks the MongoDB wire protocol, as its own process on loopback.

    python deploy/mongo_server.py --port 27017 --path .data/mongo.sqlite3   # make run: survives restarts
    python deploy/mongo_server.py --port 0 --memory                         # tests: a throwaway store

It prints ``ready mongodb://host:port/?directConnection=true`` once it accepts connections. The services
only ever see ``MONGO_URI``: point it at a real MongoDB replica set and nothing else changes.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from mongoeco.engines import MemoryEngine, SQLiteEngine
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer


async def serve(host: str, port: int, path: str | None) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = SQLiteEngine(path) if path else MemoryEngine()
    server = AsyncMongoEcoProxyServer(engine=engine, host=host, port=port)
    address = await server.start()
    print(f"ready {address.uri}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    store = parser.add_mutually_exclusive_group(required=True)
    store.add_argument("--memory", action="store_true", help="keep everything in memory")
    store.add_argument("--path", help="SQLite file that keeps the data across restarts")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, None if args.memory else args.path))


if __name__ == "__main__":
    main()
