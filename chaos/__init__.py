"""``make chaos``: the platform's guarantees proven with real processes, SIGKILL and broker restarts.

``chaos.harness`` runs it; ``chaos.flows`` is the client load and ``chaos.invariants`` what must hold after.
"""
