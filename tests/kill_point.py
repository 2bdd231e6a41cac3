"""Run agentmem's command line and SIGKILL it at one chosen point of the code.

    python tests/kill_point.py MODULE:QUALNAME [--within MODULE:QUALNAME] [--nth N]
        [--on call|return] -- ARGS...

The process kills itself when the function QUALNAME of MODULE is entered (``call``) or
returns (``return``, the default) for the N-th time, counting only calls made (directly or
not) from inside ``--within``. Nothing of agentmem is replaced: a profile hook watches
calls go by (:func:`sys.setprofile`), so the code runs as it does in production, up to the
kill. A crash test pins a window between two writes this way, where random kills hit it
only now and then. If the point is never reached the command exits 3, so a test cannot
pass by killing nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from types import CodeType, FrameType
from typing import Any


def code_of(spec: str) -> CodeType:
    """Return the code object of ``module:Qual.name``."""
    module_name, _, qualname = spec.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found.__code__  # type: ignore[no-any-return]


def arm(target: CodeType, within: CodeType | None, nth: int, on: str) -> None:
    """Install the hook that kills the process at the ``nth`` matching event."""
    seen = 0
    lock = threading.Lock()

    def inside(frame: FrameType | None) -> bool:
        while frame is not None:
            if frame.f_code is within:
                return True
            frame = frame.f_back
        return False

    def hook(frame: FrameType, event: str, _arg: object) -> None:
        nonlocal seen
        if frame.f_code is not target or event != on:
            return
        if within is not None and not inside(frame.f_back):
            return
        with lock:
            seen += 1
            if seen == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.setprofile(hook)
    threading.setprofile(hook)


def main() -> int:
    """Parse the point, arm it, and run the command line with the remaining arguments."""
    parser = argparse.ArgumentParser()
    parser.add_argument("point")
    parser.add_argument("--within")
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--on", choices=("call", "return"), default="return")
    given = sys.argv[1:]
    split = given.index("--") if "--" in given else len(given)
    options = parser.parse_args(given[:split])
    args = given[split + 1 :]

    from agentmem.cli import main as cli

    target = code_of(options.point)
    within = code_of(options.within) if options.within else None
    arm(target, within, options.nth, options.on)
    code = cli(args)
    sys.setprofile(None)
    threading.setprofile(None)  # type: ignore[arg-type]
    sys.stderr.write(f"kill point {options.point} #{options.nth} never reached\n")
    return 3 if code == 0 else int(code or 1)


if __name__ == "__main__":
    sys.exit(main())
