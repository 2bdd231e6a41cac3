"""A full disk is a retryable DiskFullError, nothing is damaged, and freeing space is enough.

On a full disk ``add`` once reported "journal ... is damaged or was changed by another
program: restore the folder from a backup", although after freeing space every turn was
there: SQLite had rolled the full write back itself, and the journal's own ROLLBACK then
failed over the real cause. Here memory lives on a real 4 MB tmpfs that is filled to the
last byte, then freed 8 KB at a time while turns keep coming, so the records database, the
vector journal and chromadb each meet the full disk; then all space is freed.

Mounting a tmpfs needs no privilege inside a user and mount namespace (``unshare -rm``),
which also keeps the mount from outliving the test; where the kernel refuses one, the test
is skipped, and tests/test_records_errors.py and tests/test_vectors_errors.py still check
the same SQLITE_FULL with SQLite's page cap.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Minutes on a loaded machine (a process filling a real disk, then turns written on it).
pytestmark = pytest.mark.heavy

#: Runs inside the namespace, on the tmpfs mounted at argv[1]; prints what happened as JSON.
SCRIPT = r"""
import errno, json, os, sys
from agentmem import Memory
from agentmem.errors import AgentMemError

root = sys.argv[1]
data = os.path.join(root, "data")
report = {"raised": [], "failures": [], "accepted": [], "refused": []}
memory = Memory(data, model="none", stores=("turns",), env={})
memory.add("Note start: I keep bees.", user_id="h")
filler = os.path.join(root, "filler")


def fill():
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for chunk in (65536, 4096, 512, 1):
        try:
            while True:
                os.write(fd, b"x" * chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    os.close(fd)


fill()
for step in range(48):
    text = f"Note {step}: " + "the hive on the roof needs checking. " * 12
    try:
        result = memory.add(text, user_id="h")
    except AgentMemError as exc:
        report["raised"].append([type(exc).__name__, exc.retryable, str(exc)])
        report["refused"].append(step)
    else:
        report["accepted"].append(step)
        report["failures"] += list(result.failures.values())
    os.truncate(filler, max(0, os.path.getsize(filler) - 8192))
# The vectors written behind go to chromadb on a flush: full again, chromadb meets it.
fill()
try:
    memory.components.vectors.flush()
except AgentMemError as exc:
    report["flush"] = [type(exc).__name__, exc.retryable, str(exc)]
os.remove(filler)
resumed = memory.resume("h")
report["resumed"] = resumed is None or resumed.ok
after = memory.add("Note after: the bees swarmed.", user_id="h")
report["after_ok"] = after.ok
memory.close()
with Memory(data, model="none", stores=("turns",), env={}) as again:
    turns = again.records.turns("h")
    report["stored"] = [t.text.split(":")[0] for t in turns]
    report["pending"] = len(again.records.pending_turns("h"))
    items = again.get_all(user_id="h", store="turns")
    report["remembered"] = sorted({i for r in items for i in r["source_turn_ids"]})
    report["turn_ids"] = sorted(t.id for t in turns)
    found = again.search("the hive on the roof", user_id="h", top_k=200, filters={"store": "turns"})
    report["found"] = len(found.items)
print(json.dumps(report))
"""


def namespace_command() -> list[str]:
    """Return the command prefix that runs a shell in a user and mount namespace."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        pytest.skip("needs Linux's unshare to mount a small tmpfs without privileges")
    command = [unshare, "--user", "--map-root-user", "--mount"]
    probe = subprocess.run([*command, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"this kernel refuses a user namespace: {probe.stderr.decode().strip()}")
    return command


def fill_and_free(tmp_path: Path) -> dict[str, Any]:
    mount = tmp_path / "disk"
    mount.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            *namespace_command(),
            "sh",
            "-c",
            'mount -t tmpfs -o size=4m tmpfs "$1" && exec "$2" "$3" "$1"',
            "sh",
            str(mount),
            sys.executable,
            str(script),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_full_disk_is_disk_full_and_freeing_space_is_all_it_takes(tmp_path: Path) -> None:
    report = fill_and_free(tmp_path)
    # The full disk was met before a turn was stored (records) and after (the journal).
    assert report["raised"] and report["failures"]
    for kind, retryable, message in report["raised"]:
        assert kind == "DiskFullError" and retryable, message
        assert "the disk is full" in message and "free space" in message
    for failure in report["failures"]:
        assert "the disk is full" in failure and "free space" in failure, failure
    kind, retryable, flushing = report["flush"]  # chromadb's own database, full
    assert kind == "DiskFullError" and retryable and "free space" in flushing, flushing
    for message in [m for _, _, m in report["raised"]] + report["failures"] + [flushing]:
        assert "damaged" not in message and "backup" not in message, message
    # All or nothing per call: a refused call stored no turn, an accepted one its turn.
    assert report["stored"] == (
        ["Note start"] + [f"Note {step}" for step in report["accepted"]] + ["Note after"]
    )
    # Freeing space was enough: everything pending was folded in, every turn is
    # remembered and found by meaning, and the folder takes new turns.
    assert report["resumed"] and report["after_ok"] and report["pending"] == 0
    assert report["remembered"] == report["turn_ids"]
    assert report["found"] == len(report["turn_ids"])
