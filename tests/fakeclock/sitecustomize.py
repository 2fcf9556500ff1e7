"""Test-only: step the host clock of a plugin child process without touching the machine's.

Put this directory on PYTHONPATH and name a file in HOST_CLOCK_OFFSET_FILE; the child's
time.time() then returns the real time plus the number of seconds in that file, read on every
call, so a test can step the clock while the child runs. time.monotonic() and time.sleep() are
left alone (libfaketime moves or breaks them on Python 3.11).
"""

import os
import time

_path = os.environ.get("HOST_CLOCK_OFFSET_FILE")
if _path:
    _real = time.time

    def _stepped() -> float:
        try:
            with open(_path) as fh:
                return _real() + float(fh.read() or 0)
        except (OSError, ValueError):
            return _real()

    time.time = _stepped
