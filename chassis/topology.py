"""The broker's topology from one description, declared whole at every start of every service.

Every service publishes its events to its topic exchange ``<service>.events``. Every event handler has a
durable quorum queue ``evt-<source>-<type>--<service>.<method>`` bound to that exchange, delay queues
``<queue>.retry.<ms>`` that dead-letter back to it when their time is up, and the platform shares one
dead-letter queue. The description of who handles what (``TOPOLOGY_FILE``, a YAML list of handlers) is
declared by every service at every start, producers included, so:

- a handler's queue exists from the first start of *any* service, and events published before the handler's
  own first start wait in it;
- definitions the broker lost (a node replaced, a queue deleted by hand) come back at the next start, and a
  subscriber re-declares its own queues as soon as a forward finds one missing.

Queues are quorum queues (``x-queue-type: quorum``): a classic queue loses acknowledged messages when its node
is lost. A handler queue has a delivery limit (``QUEUE_DELIVERY_LIMIT``): a message redelivered that often
(each consumer died while handling it) goes to the dead-letter queue instead of killing consumers forever.
Dead-lettering from quorum queues is at-least-once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kombu import Connection, Exchange, Queue
from nameko.events import get_event_exchange
from nameko.extensions import SharedExtension

log = logging.getLogger(__name__)

DEFAULT_DEAD_LETTER_QUEUE = "infusion.dead-letters"
DEFAULT_EXCHANGE = Exchange("")
DEFAULT_DELIVERY_LIMIT = 10
#: Exponential backoff from 1 s, capped at an hour: 22,965 s, about 6.4 hours, before an event is given up.
DEFAULT_RETRY_DELAYS = (1, 4, 16, 64, 256, 1024, 3600, 3600, 3600, 3600, 3600, 3600)
DEFAULT_RETRY_JITTER = 0.2
QUORUM = {"x-queue-type": "quorum"}
AT_LEAST_ONCE_DEAD_LETTERING = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


@dataclass(frozen=True)
class Handler:
    """One event handler: the ``method`` of ``service`` handles ``event_type`` events from ``source``."""

    source: str
    event_type: str
    service: str
    method: str

    @property
    def queue_name(self) -> str:
        return f"evt-{self.source}-{self.event_type}--{self.service}.{self.method}"


@dataclass(frozen=True)
class RetrySchedule:
    """How long a failed event waits before each retry: exponential, with jitter, over hours.

    Attempt ``n`` (1-based) waits ``delays[n-1]`` seconds, give or take ``jitter`` (a fraction): each delay has
    its own queue whose TTL is the longest wait, and each message carries its own shorter expiration.
    """

    delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    jitter: float = DEFAULT_RETRY_JITTER

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetrySchedule:
        delays = config.get("EVENT_RETRY_DELAYS") or DEFAULT_RETRY_DELAYS
        jitter = float(config.get("EVENT_RETRY_JITTER", DEFAULT_RETRY_JITTER))
        if not 0 <= jitter < 1 or any(float(delay) <= 0 for delay in delays):
            raise ValueError("EVENT_RETRY_DELAYS must be positive seconds and EVENT_RETRY_JITTER within [0, 1)")
        return cls(tuple(float(delay) for delay in delays), jitter)

    @property
    def retries(self) -> int:
        return len(self.delays)

    @property
    def total_seconds(self) -> float:
        return sum(self.delays)

    def queue_ttl_ms(self, retry: int) -> int:
        return max(1, round(self.delays[retry - 1] * (1 + self.jitter) * 1000))

    def wait_ms(self, retry: int) -> int:
        """This retry's wait, drawn with jitter (never longer than its queue's TTL)."""
        low = self.delays[retry - 1] * (1 - self.jitter) * 1000
        return max(1, min(self.queue_ttl_ms(retry), round(random.uniform(low, self.queue_ttl_ms(retry)))))


class Topology:
    """Exchanges and queues of some handlers, as this platform declares them."""

    def __init__(self, config: Mapping[str, Any], handlers: Iterable[Handler] = ()) -> None:
        self.config = config
        self.handlers = tuple(handlers)
        self.schedule = RetrySchedule.from_config(config)
        self.dead_letter_queue_name = str(config.get("DEAD_LETTER_QUEUE") or DEFAULT_DEAD_LETTER_QUEUE)
        self.delivery_limit = int(config.get("QUEUE_DELIVERY_LIMIT", DEFAULT_DELIVERY_LIMIT))

    @classmethod
    def described(cls, config: Mapping[str, Any]) -> Topology | None:
        """The whole platform's topology from ``TOPOLOGY_FILE``, or None when no description is configured."""
        path = config.get("TOPOLOGY_FILE")
        if not path:
            return None
        return cls(config, load_handlers(path))

    def handles(self, source: str, event_type: str) -> bool:
        return any(h.source == source and h.event_type == event_type for h in self.handlers)

    def dead_letter_queue(self) -> Queue:
        return Queue(self.dead_letter_queue_name, exchange=DEFAULT_EXCHANGE, routing_key=self.dead_letter_queue_name,
                     durable=True, auto_delete=False, queue_arguments=dict(QUORUM))

    def handler_queue(self, handler: Handler) -> Queue:
        """The handler's queue, bound to its source's exchange; over the delivery limit, to the dead letters."""
        return Queue(handler.queue_name, exchange=get_event_exchange(handler.source, self.config),
                     routing_key=handler.event_type, durable=True, auto_delete=False, exclusive=False,
                     queue_arguments={**QUORUM, "x-delivery-limit": self.delivery_limit,
                                      "x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": self.dead_letter_queue_name,
                                      **AT_LEAST_ONCE_DEAD_LETTERING})

    def retry_queues(self, handler: Handler) -> list[Queue]:
        """One delay queue per retry; when a message's time is up it is dead-lettered back to the handler."""
        queues = []
        for retry in range(1, self.schedule.retries + 1):
            name = f"{handler.queue_name}.retry.{self.schedule.queue_ttl_ms(retry)}"
            queues.append(Queue(name, exchange=DEFAULT_EXCHANGE, routing_key=name, durable=True, auto_delete=False,
                                queue_arguments={**QUORUM, "x-message-ttl": self.schedule.queue_ttl_ms(retry),
                                                 "x-dead-letter-exchange": "",
                                                 "x-dead-letter-routing-key": handler.queue_name,
                                                 **AT_LEAST_ONCE_DEAD_LETTERING}))
        return queues

    def queues_of(self, handler: Handler) -> list[Queue]:
        return [self.handler_queue(handler), *self.retry_queues(handler)]

    def declare(self, connection: Connection, handlers: Iterable[Handler] | None = None) -> None:
        """Declare the dead-letter queue and, for each handler (all by default), its exchange and queues."""
        channel = connection.channel()
        try:
            self.dead_letter_queue()(channel).declare()
            for handler in self.handlers if handlers is None else handlers:
                for queue in self.queues_of(handler):
                    queue(channel).declare()  # declares the exchange and the binding too
        finally:
            channel.close()

    def declare_with(self, amqp_uri: str, handlers: Iterable[Handler] | None = None) -> None:
        with Connection(amqp_uri, connect_timeout=10) as connection:
            self.declare(connection, handlers)


def load_handlers(path: str | Path) -> list[Handler]:
    """The handlers listed in a topology description file."""
    document = yaml.safe_load(Path(path).read_text())
    try:
        return [Handler(entry["source"], entry["event"], entry["service"], entry["method"])
                for entry in document["handlers"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: expected 'handlers' with source, event, service and method each") from exc


class DeclaredTopology(SharedExtension):
    """Declares the whole described topology once per service process, at set-up (before any consumer starts
    and before the relay publishes); ``described`` is None when no ``TOPOLOGY_FILE`` is configured."""

    described: Topology | None = None

    def setup(self) -> None:
        config = self.container.config
        self.described = Topology.described(config)
        if self.described is not None:
            self.described.declare_with(config["AMQP_URI"])
            log.info("declared the broker topology: %d handlers", len(self.described.handlers))

    def handles(self, source: str, event_type: str) -> bool | None:
        """Whether the description lists a handler of this event (None: no description to ask)."""
        return None if self.described is None else self.described.handles(source, event_type)
