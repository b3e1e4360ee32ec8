"""Event handlers that never drop an event: retries with backoff over hours, then a dead-letter queue.

``@subscribe("scheduling", "appointment.booked", AppointmentBooked)`` consumes the handler's durable quorum
queue (``chassis.topology``), declared with its delay queues and the dead-letter queue at set-up, and the
whole described topology with them, so no event published before the consumer runs is lost. The handler
receives a ``chassis.events.Event`` validated against the consumer's payload schema.

What happens when a handler raises depends on what it raised:

- ``chassis.errors.Rejected`` (*never*: the event contradicts the domain) or an event that cannot be read
  (bad envelope, unknown version): to the dead-letter queue at once;
- ``chassis.errors.NotYet`` (*not yet*: a fact it needs has not arrived, as events come in any order) and any
  other exception (*failed*: a store or a dependency is down): retried on the schedule
  (``EVENT_RETRY_DELAYS``, exponential with ``EVENT_RETRY_JITTER``, about 6.4 hours by default), then
  dead-lettered with the last reason. Other events keep flowing meanwhile.

A retry is a republish (confirmed, mandatory) to the handler's delay queue for that attempt, whose TTL
dead-letters it back to the handler's queue. If a forward finds its queue missing (the broker lost its
definitions), the subscriber re-declares its queues and forwards again; if the broker refuses, the original
message is requeued, never acknowledged, so nothing is lost. Dead letters carry the error, the handler and
the queue they came from; ``infusion dlq list`` shows them and ``infusion dlq replay`` sends them back.

Handlers must be idempotent (events arrive at least once and in any order): derive the ids of what they
create from the event, or record the event id in the document they change (``chassis.store``).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

import eventlet
from marshmallow import Schema
from nameko.events import SERVICE_POOL, EventHandler

from chassis.amqp import EventPublisher, Unroutable
from chassis.clock import isoformat, utcnow
from chassis.errors import NotYet, Rejected
from chassis.events import EventInvalid, read_event
from chassis.ids import new_id
from chassis.logs import CORRELATION_KEY
from chassis.topology import DEFAULT_DEAD_LETTER_QUEUE, DEFAULT_EXCHANGE, DeclaredTopology, Handler, Topology

log = logging.getLogger(__name__)

__all__ = ["ATTEMPT_HEADER", "DEFAULT_DEAD_LETTER_QUEUE", "DEFAULT_EXCHANGE", "EventSubscriber", "subscribe"]

ATTEMPT_HEADER = "x-attempt"
#: How long a subscriber waits before requeueing an event it could not forward (the broker refused).
FORWARD_FAILED_PAUSE_SECONDS = 1.0


class EventSubscriber(EventHandler):
    publisher = EventPublisher()
    topology_declaration = DeclaredTopology()

    def __init__(self, source_service: str, event_type: str,
                 payload_schemas: type[Schema] | dict[int, type[Schema]], **kwargs: Any) -> None:
        if not isinstance(payload_schemas, dict):
            payload_schemas = {1: payload_schemas}
        self.payload_schemas = payload_schemas
        super().__init__(source_service, event_type, handler_type=SERVICE_POOL, reliable_delivery=True,
                         requeue_on_error=False, **kwargs)

    def setup(self) -> None:
        super().setup()
        self.topology = Topology(self.container.config)
        self.handler = Handler(self.source_service, self.event_type, self.container.service_name, self.method_name)
        self.queue = self.topology.handler_queue(self.handler)  # quorum, with a delivery limit
        self.retry_queues = self.topology.retry_queues(self.handler)
        self.dead_letters = self.topology.dead_letter_queue()
        self._declare_own_queues()

    def _declare_own_queues(self) -> None:
        self.topology.declare_with(self.container.config["AMQP_URI"], [self.handler])

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
        error = exc_info[1]
        attempt = self._attempt(message)
        reason = "".join(traceback.format_exception_only(exc_info[0], error)).strip()
        if isinstance(error, Rejected):
            forward = partial(self._dead_letter, message, body, reason=f"rejected: {reason}", attempts=attempt)
        elif attempt <= self.topology.schedule.retries:
            forward = partial(self._retry_later, message, body, attempt, reason, waiting=isinstance(error, NotYet))
        else:
            hours = self.topology.schedule.total_seconds / 3600
            forward = partial(self._dead_letter, message, body, attempts=attempt,
                              reason=f"gave up after {attempt} attempts over {hours:.1f} h: {reason}")
        self._move_on(forward, message)
        return result, exc_info

    def _move_on(self, forward: Callable[[], None], message: Any) -> None:
        """Forward an event (to a delay queue or the dead letters); if that fails, keep it queued."""
        try:
            forward()
        except Exception:
            log.exception("could not move an event on; requeueing it")
            eventlet.sleep(FORWARD_FAILED_PAUSE_SECONDS)
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)

    def _retry_later(self, message: Any, body: Any, attempt: int, reason: str, waiting: bool) -> None:
        delay_queue = self.retry_queues[attempt - 1]
        wait_ms = self.topology.schedule.wait_ms(attempt)
        extra = {"event_id": _event_id(body), "queue": self.queue.name, "attempt": attempt}
        if waiting:
            log.info("%s is waiting for a fact it needs (attempt %d), again in %.1fs: %s", self.method_name,
                     attempt, wait_ms / 1000, reason, extra=extra)
        else:
            log.warning("%s failed (attempt %d), retrying in %.1fs: %s", self.method_name, attempt,
                        wait_ms / 1000, reason, extra=extra)
        self._republish(message, body, routing_key=delay_queue.name, headers={ATTEMPT_HEADER: attempt + 1},
                        expiration=wait_ms / 1000)

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

    def _republish(self, message: Any, body: Any, routing_key: str, headers: dict[str, Any],
                   message_id: str | None = None, expiration: float | None = None) -> None:
        """Publish confirmed and mandatory; a missing queue is declared again once, then it must route."""
        original = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-death")}
        send = partial(self.publisher.publisher.publish, body, exchange=DEFAULT_EXCHANGE, routing_key=routing_key,
                       headers={**original, **headers}, expiration=expiration,
                       message_id=message_id or message.properties.get("message_id"))
        try:
            send()
        except Unroutable:
            log.warning("queue %s is missing: declaring %s's queues again", routing_key, self.queue.name)
            self._declare_own_queues()
            send()

    @staticmethod
    def _attempt(message: Any) -> int:
        return int((message.headers or {}).get(ATTEMPT_HEADER, 1))


def _event_id(body: Any) -> str | None:
    return body.get("event_id") if isinstance(body, dict) else None


subscribe: Callable[..., Any] = EventSubscriber.decorator
