"""The ``agentmem`` command's entry point (its script), and ``python -m agentmem``."""

import contextlib
import gc
import logging
import os
import sys

from agentmem.cli import main


def run() -> None:
    """Run the command and exit with its status, without collecting garbage on the way out.

    The interpreter's last garbage collections walk every object the command created
    (155,000 after a search of 1,000 turns): 0.3 s of a 1.8 s ``agentmem memory search``
    on two cores, for memory the process is about to give back anyway. Frozen objects are
    skipped; everything the command wrote is closed by then (``main`` closes the memory),
    and durable as after a SIGKILL, which the crash tests cover.
    """
    code = main()
    gc.freeze()
    # Everything the command wrote is closed and on disk by now. Ending here, without
    # the interpreter's teardown, also keeps chromadb from writing the index files of
    # collections this command dropped (an erasure) again as its objects are destroyed:
    # that rewrite came after the command's own sweep and left a forgotten user's
    # vectors on disk until the next open (tests/test_erasure.py, 1 run in 6).
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe reads nothing more
            stream.flush()
    logging.shutdown()
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    run()
