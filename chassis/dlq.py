"""The dead-letter queue, for operators: list what failed and send it back to its handler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kombu import Connection, Queue

from chassis.subscriber import ATTEMPT_HEADER, DEFAULT_DEAD_LETTER_QUEUE, DEFAULT_EXCHANGE


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


def _dead_letter(message: Any) -> DeadLetter:
    headers = message.headers or {}
    body = message.decode()
    return DeadLetter(
        dead_letter_id=headers.get("x-dead-letter-id", message.properties.get("message_id", "")),
        event_id=body.get("event_id") if isinstance(body, dict) else None,
        event_type=body.get("type") if isinstance(body, dict) else None,
        service=headers.get("x-service", ""), handler=headers.get("x-handler", ""),
        original_queue=headers.get("x-original-queue", ""), error=headers.get("x-error", ""),
        attempts=int(headers.get("x-attempts", 0)), dead_lettered_at=headers.get("x-dead-lettered-at", ""),
        body=body,
    )


class DeadLetterQueue:
    def __init__(self, amqp_uri: str, queue_name: str = DEFAULT_DEAD_LETTER_QUEUE) -> None:
        self.amqp_uri = amqp_uri
        self.queue_name = queue_name

    def _take_all(self, connection: Connection) -> tuple[Any, list[Any]]:
        channel = connection.channel()
        queue = Queue(self.queue_name, exchange=DEFAULT_EXCHANGE, durable=True, channel=channel)
        queue.declare()
        messages = []
        while (message := queue.get(no_ack=False, accept=["json"])) is not None:
            messages.append(message)
        return channel, messages

    def list(self) -> list[DeadLetter]:
        """Every dead letter, oldest first; the queue is left as it was."""
        with Connection(self.amqp_uri) as connection:
            channel, messages = self._take_all(connection)
            letters = [_dead_letter(m) for m in messages]
            for message in messages:
                message.requeue()
            channel.close()
        return letters

    def replay(self, dead_letter_id: str) -> DeadLetter | None:
        """Send one dead letter back to the queue it came from, with its attempts reset."""
        with Connection(self.amqp_uri, transport_options={"confirm_publish": True}) as connection:
            channel, messages = self._take_all(connection)
            replayed = None
            for message in messages:
                letter = _dead_letter(message)
                if replayed is None and letter.dead_letter_id == dead_letter_id:
                    headers = {k: v for k, v in (message.headers or {}).items()
                               if not k.startswith("x-") or k == "x-original-queue"}
                    headers[ATTEMPT_HEADER] = 1
                    producer = connection.Producer(channel=connection.channel())
                    producer.publish(letter.body, exchange=DEFAULT_EXCHANGE, routing_key=letter.original_queue,
                                     headers=headers, serializer="json", delivery_mode=2,
                                     message_id=letter.event_id, mandatory=True)
                    message.ack()
                    replayed = letter
                else:
                    message.requeue()
            channel.close()
        return replayed
