"""Event handlers that never drop an event: retries with backoff, then a dead-letter queue.

``@subscribe("scheduling", "appointment.booked", AppointmentBooked)`` declares a durable queue per
handler (Nameko's service-pool queue), created at start-up so no event published afterwards is lost.
The handler receives a ``chassis.events.Event`` validated against the consumer's payload schema.

When a handler raises, the message is republished (with publisher confirms) to a delay queue of that
handler, ``<queue>.retry.<ms>``, whose TTL dead-letters it back to the handler's queue: attempt n waits
``EVENT_RETRY_DELAYS[n-1]`` seconds. Other events keep flowing meanwhile. After the last delay the event
goes to the dead-letter queue (``DEAD_LETTER_QUEUE``, one for the platform) with the error, the handler
and the queue it came from, where ``infusion dlq list`` shows it and ``infusion dlq replay ID`` sends it
back. An event that can never be handled (bad envelope, unknown version) goes there at once.

Handlers must be idempotent (events arrive at least once and in any order): derive the ids of what they
create from the event, or record the event id in the document they change (``chassis.store``).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

from kombu import Exchange, Queue
from marshmallow import Schema
from nameko.amqp.publish import Publisher, get_connection
from nameko.events import SERVICE_POOL, EventHandler

from chassis.clock import isoformat, utcnow
from chassis.events import EventInvalid, read_event
from chassis.ids import new_id
from chassis.logs import CORRELATION_KEY

log = logging.getLogger(__name__)

DEFAULT_DEAD_LETTER_QUEUE = "infusion.dead-letters"
DEFAULT_RETRY_DELAYS = (1.0, 5.0, 30.0)
ATTEMPT_HEADER = "x-attempt"
DEFAULT_EXCHANGE = Exchange("")


def dead_letter_queue(config: dict[str, Any]) -> Queue:
    return Queue(config.get("DEAD_LETTER_QUEUE", DEFAULT_DEAD_LETTER_QUEUE), exchange=DEFAULT_EXCHANGE,
                 durable=True, auto_delete=False)


def retry_queue(handler_queue: str, delay_seconds: float) -> Queue:
    delay_ms = max(1, int(delay_seconds * 1000))
    name = f"{handler_queue}.retry.{delay_ms}"
    return Queue(name, exchange=DEFAULT_EXCHANGE, routing_key=name, durable=True, auto_delete=False,
                 queue_arguments={"x-message-ttl": delay_ms, "x-dead-letter-exchange": "",
                                  "x-dead-letter-routing-key": handler_queue})


class EventSubscriber(EventHandler):
    def __init__(self, source_service: str, event_type: str,
                 payload_schemas: type[Schema] | dict[int, type[Schema]], **kwargs: Any) -> None:
        if not isinstance(payload_schemas, dict):
            payload_schemas = {1: payload_schemas}
        self.payload_schemas = payload_schemas
        super().__init__(source_service, event_type, handler_type=SERVICE_POOL, reliable_delivery=True,
                         requeue_on_error=False, **kwargs)

    def setup(self) -> None:
        super().setup()
        config = self.container.config
        delays = config.get("EVENT_RETRY_DELAYS") or DEFAULT_RETRY_DELAYS
        self.retry_queues = [retry_queue(self.queue.name, float(delay)) for delay in delays]
        self.dead_letters = dead_letter_queue(config)
        with get_connection(config["AMQP_URI"]) as connection:
            channel = connection.channel()
            for queue in (*self.retry_queues, self.dead_letters):
                queue(channel).declare()
            # The handler's own queue too, so that events published before the consumer runs are kept.
            self.queue(channel).declare()
        self.publisher = Publisher(config["AMQP_URI"], use_confirms=True, exchange=DEFAULT_EXCHANGE)

    def handle_message(self, body: Any, message: Any) -> None:
        context_data = self.unpack_message_headers(message)
        try:
            event = read_event(body, self.payload_schemas)
        except EventInvalid as exc:
            self._move_on(partial(self._dead_letter, message, body, reason=str(exc),
                                  attempts=self._attempt(message)), message)
            return
        context_data[CORRELATION_KEY] = event.correlation_id or context_data.get(CORRELATION_KEY)
        self.container.spawn_worker(self, (event,), {}, context_data=context_data,
                                    handle_result=partial(self._settle, message, body))

    def _settle(self, message: Any, body: Any, worker_ctx: Any, result: Any = None,
                exc_info: Any = None) -> tuple[Any, Any]:
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return result, exc_info
        attempt = self._attempt(message)
        reason = "".join(traceback.format_exception_only(exc_info[0], exc_info[1])).strip()
        if attempt <= len(self.retry_queues):
            self._move_on(partial(self._retry_later, message, body, attempt, reason), message)
        else:
            self._move_on(partial(self._dead_letter, message, body, reason=reason, attempts=attempt), message)
        return result, exc_info

    def _move_on(self, forward: Callable[[], None], message: Any) -> None:
        """Forward a failed event (to a delay queue or the dead letters); if that fails, keep it queued."""
        try:
            forward()
        except Exception:
            log.exception("could not move a failed event on; requeueing it")
            self.queue_consumer.requeue_message(message)

    def _retry_later(self, message: Any, body: Any, attempt: int, reason: str) -> None:
        delay_queue = self.retry_queues[attempt - 1]
        log.warning("%s failed (attempt %d), retrying via %s: %s", self.method_name, attempt, delay_queue.name,
                    reason, extra={"event_id": _event_id(body), "queue": self.queue.name, "attempt": attempt})
        self._republish(message, body, routing_key=delay_queue.name, headers={ATTEMPT_HEADER: attempt + 1})
        self.queue_consumer.ack_message(message)

    def _dead_letter(self, message: Any, body: Any, reason: str, attempts: int) -> None:
        dead_letter_id = new_id("dl")
        log.error("%s gave up on event %s after %d attempt(s): %s", self.method_name, _event_id(body),
                  attempts, reason, extra={"event_id": _event_id(body), "queue": self.queue.name})
        self._republish(message, body, routing_key=self.dead_letters.name, message_id=dead_letter_id, headers={
            "x-dead-letter-id": dead_letter_id,
            "x-original-queue": self.queue.name,
            "x-service": self.container.service_name,
            "x-handler": self.method_name,
            "x-error": reason[:2000],
            "x-attempts": attempts,
            "x-dead-lettered-at": isoformat(utcnow()),
        })
        self.queue_consumer.ack_message(message)

    def _republish(self, message: Any, body: Any, routing_key: str, headers: dict[str, Any],
                   message_id: str | None = None) -> None:
        original = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-death")}
        self.publisher.publish(body, routing_key=routing_key, headers={**original, **headers},
                               message_id=message_id or message.properties.get("message_id"))

    @staticmethod
    def _attempt(message: Any) -> int:
        return int((message.headers or {}).get(ATTEMPT_HEADER, 1))


def _event_id(body: Any) -> str | None:
    return body.get("event_id") if isinstance(body, dict) else None


subscribe: Callable[..., Any] = EventSubscriber.decorator
