#!/usr/bin/env bash
# Makes sure RabbitMQ answers on 127.0.0.1:5672 with its management API on :15672 (nameko's test fixtures make a
# fresh vhost per test through it), and that it can still make a vhost. Starts the broker when it does not answer;
# restarts it when it answers but is wedged (seen here after test runs were killed: every vhost creation hung).
set -euo pipefail
AMQP_PORT="${AMQP_PORT:-5672}"
MGMT_URL="${RABBIT_MANAGEMENT_URL:-http://guest:guest@127.0.0.1:15672}"
PID_FILE="${RABBITMQ_PID_FILE:-/var/lib/rabbitmq/mnesia/rabbit@localhost.pid}"

amqp_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null; }
management_answers() { curl -fsS -m 10 -o /dev/null "$MGMT_URL/api/overview" 2>/dev/null; }
makes_a_vhost() {  # a wedged broker answers both ports but hangs here
  local probe="ensure_rabbitmq_probe_$$"
  curl -fsS -m 20 -o /dev/null -X PUT "$MGMT_URL/api/vhosts/$probe" 2>/dev/null &&
    curl -fsS -m 20 -o /dev/null -X DELETE "$MGMT_URL/api/vhosts/$probe" 2>/dev/null
}
start_and_wait() {
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 600); do amqp_answers && break; sleep 0.5; done
  amqp_answers || { echo "rabbitmq: did not come up" >&2; exit 1; }
  rabbitmqctl await_startup >/dev/null 2>&1 || true
}
wait_for_management() {
  for _ in $(seq 1 240); do management_answers && return 0; sleep 0.5; done
  return 1
}

if ! amqp_answers; then
  echo "rabbitmq: not answering on :$AMQP_PORT, starting it" >&2
  start_and_wait
fi
if ! management_answers; then
  echo "rabbitmq: enabling the management plugin" >&2
  rabbitmq-plugins enable rabbitmq_management >/dev/null  # a no-op when it is enabled and still starting
  wait_for_management || { echo "rabbitmq: management API did not come up" >&2; exit 1; }
fi
if ! makes_a_vhost; then
  echo "rabbitmq: answers but cannot make a vhost within 20 s (wedged); restarting it" >&2
  if [ -f "$PID_FILE" ]; then kill -9 "$(cat "$PID_FILE")" 2>/dev/null || true; fi
  for _ in $(seq 1 60); do amqp_answers || break; sleep 0.5; done
  start_and_wait
  wait_for_management && makes_a_vhost || {
    echo "rabbitmq: still cannot make a vhost after a restart. A test broker's data can be reset with:" >&2
    echo "  kill -9 \$(cat $PID_FILE); rm -rf /var/lib/rabbitmq/mnesia/rabbit@localhost*; $0" >&2
    exit 1; }
fi
echo "rabbitmq: ready" >&2
