"""Run ``keyward`` with a crash point: ``KEYWARD_TEST_CRASH_AT=<checkpoint>`` (e.g. ``set:before``,
``dependents:inside:10``) kills this process with SIGKILL when the rotation engine reaches it;
``KEYWARD_TEST_SIGTERM_AT=<checkpoint>`` sends it SIGTERM there instead.

Only the tests use this; keyward's own ``RotationEngine.checkpoint`` does nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from keyward.rotation import engine

POINT = os.environ.get("KEYWARD_TEST_CRASH_AT", "")
TERM_POINT = os.environ.get("KEYWARD_TEST_SIGTERM_AT", "")


def checkpoint(self: engine.RotationEngine, point: str) -> None:
    if point == POINT:
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if point == TERM_POINT:  # as if the orchestrator stopped us mid-step
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the handler (main thread) runs; this step still completes


engine.RotationEngine.checkpoint = checkpoint  # type: ignore[method-assign]

if __name__ == "__main__":
    from keyward.cli import main

    main(sys.argv[1:])
