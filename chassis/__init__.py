"""The platform chassis: shared infrastructure every service imports, never domain code.

- ``errors``: typed domain errors that cross RPC and map to HTTP statuses.
- ``ids`` / ``clock``: identifiers (random and derived) and UTC time.
- ``config``: versioned, schema-validated configuration files a clinic tunes.
- ``events``: the event envelope and the per-type, per-version payload schemas.
- ``store``: the service's own MongoDB database, with the transactional outbox.
- ``outbox``: the relay that publishes stored events with publisher confirms.
- ``subscriber``: idempotent-friendly event handlers with retries and a dead-letter queue.
- ``dlq``: listing and replaying dead letters.
- ``rpc``: RPC proxies with a timeout on every call.
- ``logs``: structured JSON logs carrying the correlation id.
"""
