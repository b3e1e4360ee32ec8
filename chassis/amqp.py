"""Publishing to RabbitMQ that never hangs and never loses a message silently.

``ConfirmedPublisher`` keeps one connection of its own (with heartbeats) and publishes persistent messages
with publisher confirms and ``mandatory``. Every publish is bounded by ``PUBLISH_TIMEOUT_SECONDS``: under
broker flow control (a memory alarm blocks publishers) or a dead connection it fails like a lost broker
instead of waiting forever. After any failure the connection is dropped and the next publish opens a new one,
so a late confirm can never be taken for another message's.

- ``Unroutable``: the broker accepted the message but no queue was bound to receive it (basic.return).
- ``PublishFailed``: no confirm within the time limit, a nack, or no broker.

``EventPublisher`` is the Nameko shared extension that gives one such publisher to every part of a service
process that publishes: the outbox relay and the subscribers' forwards to retry and dead-letter queues.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import eventlet
from eventlet.semaphore import Semaphore
from kombu import Connection, Exchange, Producer
from kombu.exceptions import ChannelError
from nameko.extensions import SharedExtension

log = logging.getLogger(__name__)

DEFAULT_PUBLISH_TIMEOUT_SECONDS = 5.0
DEFAULT_HEARTBEAT_SECONDS = 15


class Unroutable(Exception):
    """The broker accepted the publish but no queue was bound to receive it."""


class PublishFailed(Exception):
    """The broker did not confirm the publish in time (down, blocked by an alarm, or it nacked)."""


class ConfirmedPublisher:
    """Confirmed, mandatory, persistent publishing on one connection, each publish bounded in time."""

    def __init__(self, amqp_uri: str, timeout: float = DEFAULT_PUBLISH_TIMEOUT_SECONDS,
                 heartbeat: int = DEFAULT_HEARTBEAT_SECONDS) -> None:
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self.heartbeat = heartbeat
        self._lock = Semaphore()
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._keepalive: Any = None

    def publish(self, body: Any, exchange: Exchange | str, routing_key: str, headers: dict[str, Any] | None = None,
                message_id: str | None = None, mandatory: bool = True, declare: Iterable[Any] = (),
                expiration: float | None = None) -> None:
        with self._lock:
            try:
                with eventlet.Timeout(self.timeout):  # connecting, writing and the confirm, all together
                    self._ready().publish(
                        body, exchange=exchange, routing_key=routing_key, headers=headers or {},
                        message_id=message_id, mandatory=mandatory, declare=list(declare), serializer="json",
                        delivery_mode=2, expiration=expiration, retry=False)
            except ChannelError as exc:
                if "NO_ROUTE" in str(exc):
                    raise Unroutable(routing_key) from exc
                self._drop()
                raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc
            except eventlet.Timeout as exc:
                self._drop()
                raise PublishFailed(f"no confirm from the broker within {self.timeout:g}s") from exc
            except Exception as exc:
                self._drop()
                raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _ready(self) -> Producer:
        if self._producer is None:
            connection = Connection(self.amqp_uri, heartbeat=self.heartbeat, connect_timeout=self.timeout,
                                    transport_options={"confirm_publish": True})
            connection.ensure_connection(max_retries=1)
            self._connection = connection
            self._producer = Producer(connection.channel())
            if self.heartbeat:
                self._keepalive = eventlet.spawn(self._beat)
        return self._producer

    def _beat(self) -> None:
        """Heartbeats while idle, so the broker keeps the connection and a dead one is noticed."""
        while True:
            eventlet.sleep(self.heartbeat / 2)
            with self._lock:
                if self._connection is None:
                    return
                try:
                    self._connection.heartbeat_check()
                except Exception as exc:
                    log.info("publisher connection lost (%s); the next publish reconnects", exc)
                    self._drop(from_keepalive=True)
                    return

    def _drop(self, from_keepalive: bool = False) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        keepalive, self._keepalive = self._keepalive, None
        if keepalive is not None and not from_keepalive:
            keepalive.kill()
        if connection is not None:
            try:
                connection.collect()  # release the socket without waiting for a broker that may not answer
            except Exception:
                log.debug("ignoring an error while dropping a publisher connection", exc_info=True)


class EventPublisher(SharedExtension):
    """One ``ConfirmedPublisher`` per service process (``AMQP_URI``, ``PUBLISH_TIMEOUT_SECONDS``,
    ``AMQP_HEARTBEAT_SECONDS``)."""

    def setup(self) -> None:
        config = self.container.config
        self.publisher = ConfirmedPublisher(
            config["AMQP_URI"], timeout=float(config.get("PUBLISH_TIMEOUT_SECONDS", DEFAULT_PUBLISH_TIMEOUT_SECONDS)),
            heartbeat=int(config.get("AMQP_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_SECONDS)))

    def stop(self) -> None:
        self.publisher.close()

    def kill(self) -> None:
        self.publisher.close()
