"""The short chaos run CI makes (``make chaos`` is the long one): the real processes, two of each, under load,
SIGKILLs, a broker restart, closed connections, a memory alarm, a store restart and poison events; every
invariant must hold afterwards (the harness exits non-zero otherwise). See ``chaos/harness.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHORT_RUN_SECONDS = os.environ.get("CHAOS_CI_SECONDS", "45")


def test_every_invariant_holds_after_a_short_chaos_run(tmp_path):
    run = subprocess.run([sys.executable, "-m", "chaos", "--seconds", SHORT_RUN_SECONDS, "--work-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(run.stdout[-6000:])
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "every invariant holds" in run.stdout
