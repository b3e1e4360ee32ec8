"""The dead-letter queue, for operators: list what failed and send it back where it came from.

Both operations stream through the queue one message at a time, so memory stays flat however many letters
wait there. ``list`` reads up to the number of letters present when it started, without acknowledging them
(closing the channel puts them all back, in order). ``replay`` takes each letter present when it started:
one that matches is published back to where it came from (its handler's queue with its attempts reset, or,
for an event the outbox relay gave up on, its service's exchange) and acknowledged; one that does not match
is published again at the tail of the dead-letter queue and acknowledged, so the queue keeps its order.
Every publish is confirmed before the original is acknowledged: a crash in between duplicates a letter
(handlers are idempotent), never loses one.

Three kinds of letter arrive here: from a subscriber that gave up (``x-original-queue``, ``x-handler``),
from the outbox relay (``x-original-exchange``, ``x-routing-key``), and from the broker itself when a
message exceeded its queue's delivery limit (only ``x-death``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange

from chassis.subscriber import ATTEMPT_HEADER
from chassis.topology import DEFAULT_DEAD_LETTER_QUEUE, DEFAULT_EXCHANGE, Topology


@dataclass(frozen=True)
class DeadLetter:
    dead_letter_id: str
    event_id: str | None
    event_type: str | None
    service: str
    handler: str
    original_queue: str
    error: str
    attempts: int
    dead_lettered_at: str
    body: Any
    original_exchange: str = ""
    routing_key: str = ""


@dataclass(frozen=True)
class Selection:
    """Which dead letters an operator means: one id, or all those matching every filter given."""

    dead_letter_id: str | None = None
    handler: str | None = None
    event_type: str | None = None
    error: str | None = None

    def __call__(self, letter: DeadLetter) -> bool:
        return ((self.dead_letter_id is None or letter.dead_letter_id == self.dead_letter_id)
                and (self.handler is None or self.handler in (letter.handler, f"{letter.service}.{letter.handler}"))
                and (self.event_type is None or letter.event_type == self.event_type)
                and (self.error is None or self.error.lower() in letter.error.lower()))


def read_dead_letter(message: Any) -> DeadLetter:
    headers = message.headers or {}
    body = message.decode()
    deaths = headers.get("x-death") or [{}]
    original_queue = headers.get("x-original-queue") or deaths[0].get("queue", "")
    error = headers.get("x-error") or f"broker dead-lettered it: {deaths[0].get('reason', 'unknown reason')}"
    handler = headers.get("x-handler") or original_queue.rpartition(".")[2]
    service = headers.get("x-service") or original_queue.partition("--")[2].partition(".")[0]
    return DeadLetter(
        dead_letter_id=headers.get("x-dead-letter-id") or message.properties.get("message_id")
        or str(message.delivery_tag),
        event_id=body.get("event_id") if isinstance(body, dict) else None,
        event_type=body.get("type") if isinstance(body, dict) else None,
        service=service, handler=handler, original_queue=original_queue, error=error,
        attempts=int(headers.get("x-attempts", deaths[0].get("count", 0))),
        dead_lettered_at=str(headers.get("x-dead-lettered-at", deaths[0].get("time", ""))),
        body=body, original_exchange=headers.get("x-original-exchange", ""),
        routing_key=headers.get("x-routing-key", ""),
    )


class DeadLetterQueue:
    def __init__(self, amqp_uri: str, queue_name: str = DEFAULT_DEAD_LETTER_QUEUE) -> None:
        self.amqp_uri = amqp_uri
        self.queue_name = queue_name

    def _queue(self, channel: Any) -> Any:
        queue = Topology({"DEAD_LETTER_QUEUE": self.queue_name}).dead_letter_queue()(channel)
        queue.declare()
        return queue

    def iterate(self) -> Iterator[DeadLetter]:
        """Every dead letter present now, oldest first, one at a time; the queue is left as it was."""
        with Connection(self.amqp_uri) as connection:
            channel = connection.channel()
            queue = self._queue(channel)
            present = queue.queue_declare(passive=True).message_count
            for _ in range(present):
                message = queue.get(no_ack=False, accept=["json"])
                if message is None:
                    break
                yield read_dead_letter(message)
            channel.close()  # everything read goes back, in order

    def list(self) -> list[DeadLetter]:
        return list(self.iterate())

    def replay(self, dead_letter_id: str) -> DeadLetter | None:
        """Send one dead letter back where it came from, with its attempts reset."""
        return next(self.replay_matching(Selection(dead_letter_id=dead_letter_id)), None)

    def replay_matching(self, select: Callable[[DeadLetter], bool]) -> Iterator[DeadLetter]:
        """Send back every dead letter ``select`` picks (each yielded once it is safely sent)."""
        with Connection(self.amqp_uri, transport_options={"confirm_publish": True}) as connection:
            channel = connection.channel()
            queue = self._queue(channel)
            producer = connection.Producer(channel=connection.channel())
            present = queue.queue_declare(passive=True).message_count
            for _ in range(present):
                message = queue.get(no_ack=False, accept=["json"])
                if message is None:
                    break
                letter = read_dead_letter(message)
                if select(letter):
                    self._send_back(producer, letter, message)
                    message.ack()
                    yield letter
                else:  # to the tail, so that what is left keeps its order
                    producer.publish(letter.body, exchange=DEFAULT_EXCHANGE, routing_key=self.queue_name,
                                     headers=message.headers, serializer="json", delivery_mode=2,
                                     message_id=message.properties.get("message_id"), mandatory=True)
                    message.ack()
            channel.close()

    @staticmethod
    def _send_back(producer: Any, letter: DeadLetter, message: Any) -> None:
        headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-")}
        if letter.original_exchange:  # the outbox relay gave up publishing it: publish it now
            exchange = Exchange(letter.original_exchange, type="topic", durable=True)
            producer.publish(letter.body, exchange=exchange, routing_key=letter.routing_key, headers=headers,
                             serializer="json", delivery_mode=2, message_id=letter.event_id, mandatory=True,
                             declare=[exchange])
            return
        producer.publish(letter.body, exchange=DEFAULT_EXCHANGE, routing_key=letter.original_queue,
                         headers={**headers, ATTEMPT_HEADER: 1}, serializer="json", delivery_mode=2,
                         message_id=letter.event_id, mandatory=True)
