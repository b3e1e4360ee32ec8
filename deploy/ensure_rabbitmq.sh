#!/usr/bin/env bash
# Makes sure RabbitMQ answers on 127.0.0.1:5672 with its management API on :15672 (nameko's test
# fixtures make a fresh vhost per test through it). Starts the broker when it does not answer.
set -euo pipefail
AMQP_PORT="${AMQP_PORT:-5672}"
MGMT_URL="${RABBIT_MANAGEMENT_URL:-http://guest:guest@127.0.0.1:15672}"

amqp_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null; }
management_answers() { curl -fsS -o /dev/null "$MGMT_URL/api/overview" 2>/dev/null; }

if ! amqp_answers; then
  echo "rabbitmq: not answering on :$AMQP_PORT, starting it" >&2
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do amqp_answers && break; sleep 0.5; done
  amqp_answers || { echo "rabbitmq: did not come up" >&2; exit 1; }
  rabbitmqctl await_startup >/dev/null 2>&1 || true
fi
if ! management_answers; then
  echo "rabbitmq: enabling the management plugin" >&2
  rabbitmq-plugins enable rabbitmq_management >/dev/null
  for _ in $(seq 1 120); do management_answers && break; sleep 0.5; done
  management_answers || { echo "rabbitmq: management API did not come up" >&2; exit 1; }
fi
echo "rabbitmq: ready" >&2
