"""Development and deployment helpers: starting the platform's processes (``make run``, tests, benchmarks)."""
