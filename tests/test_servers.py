"""Scale-out backends: records on a real PostgreSQL, vectors on a real Chroma server.

Run with ``pytest -m servers``. The servers come from the environment when set (what
``.ci/servers.sh`` exports), else the tests start throwaway ones on 127.0.0.1:

* ``AGENTMEM_TEST_DATABASE_URL``: a SQLAlchemy URL of a PostgreSQL database whose user may
  create databases (each test gets a fresh one, dropped afterwards); otherwise ``initdb``
  and ``pg_ctl`` from the Debian packages start a cluster in a temporary folder (as the
  ``postgres`` user when running as root).
* ``AGENTMEM_TEST_CHROMA_URL``: ``http://host:port`` of a Chroma server; otherwise
  ``chroma run`` (shipped with chromadb) serves a temporary folder. Tests use fresh store
  and user names, so a shared server is never cleaned wholesale.

Without PostgreSQL, psycopg or the ``chroma`` CLI, the tests skip and say why.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from agentmem.errors import InputError, NotFoundError, StorageError
from agentmem.memory import Memory
from agentmem.protocols import MemoryStore, StoreContext
from agentmem.storage.records import Records
from agentmem.storage.vectors import VectorIndex
from agentmem.stores.turns import TurnStore
from agentmem.testing.contract import MemoryStoreContract, shared_embedder
from agentmem.types import Turn

pytestmark = pytest.mark.servers

DATABASE_ENV = "AGENTMEM_TEST_DATABASE_URL"
CHROMA_ENV = "AGENTMEM_TEST_CHROMA_URL"
JAN = datetime(2024, 1, 10, 9, 0)
JUNE = datetime(2024, 6, 10, 9, 0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- Chroma ------------------------------------------------------------------------------------


def chroma_alive(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(f"{url}/api/v2/heartbeat", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Chroma server's URL: the environment's, or a ``chroma run`` started here."""
    given = os.environ.get(CHROMA_ENV)
    if given:
        if not chroma_alive(given):
            pytest.fail(f"{CHROMA_ENV}={given} does not answer its heartbeat")
        yield given
        return
    binary = Path(sys.executable).with_name("chroma")
    found = str(binary) if binary.exists() else shutil.which("chroma")
    if found is None:
        pytest.skip("the chroma CLI (shipped with chromadb) is not installed")
    folder = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "chroma.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [found, "run", "--path", str(folder / "data"), "--host", "127.0.0.1"]
            + ["--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
    try:
        deadline = time.monotonic() + 60
        while not chroma_alive(url):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"the Chroma server did not start:\n{log_tail(log)}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


# -- PostgreSQL --------------------------------------------------------------------------------


def pg_binaries() -> Path | None:
    """Return the folder of initdb and pg_ctl (Debian keeps them out of PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    which = shutil.which("initdb")
    found = candidates[0] if candidates else which
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL URL whose user may create databases: the environment's, or a new cluster."""
    pytest.importorskip("psycopg", reason="psycopg is needed for PostgreSQL (pip install psycopg)")
    given = os.environ.get(DATABASE_ENV)
    if given:
        yield given
        return
    bindir = pg_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql, or .ci/servers.sh)")
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="agentmem-pg-"))
    if as_root:  # initdb refuses to run as root; the Debian package adds a postgres user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the cluster")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    log = folder / "server.log"
    try:
        init = subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(folder / "data"), "-A", "trust"]
            + ["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if init.returncode != 0:
            pytest.skip(f"initdb failed: {init.stderr.strip()[-500:]}")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        start = subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(log)]
            + ["-o", options, "-w", "-t", "60", "start"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        if start.returncode != 0:
            pytest.skip(f"PostgreSQL did not start:\n{log_tail(log)}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop"],
            capture_output=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def libpq_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"agentmem_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(postgres_admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(postgres_admin_url).set(database=name)
    yield url.render_as_string(hide_password=False)
    with psycopg.connect(libpq_url(postgres_admin_url), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the shared contract over the servers ------------------------------------------------------


class TestTurnStoreOnServers(MemoryStoreContract):
    """The store contract with records on PostgreSQL and vectors on a Chroma server."""

    @pytest.fixture
    def context(self, database_url: str, chroma_url: str) -> Iterator[StoreContext]:
        # Collections are named by store and user: a fresh store name isolates this test
        # on a server that other tests (or runs) share.
        self.store_name = f"turns-{uuid.uuid4().hex[:10]}"
        self.urls = (database_url, chroma_url)
        context = self.open_context()
        yield context
        for user_id in ("alice", "bob", "carol"):
            context.vectors.drop(self.store_name, user_id)
        context.records.close()

    def open_context(self) -> StoreContext:
        database_url, chroma_url = self.urls
        records = Records(database_url)
        vectors = VectorIndex(self.embedder(), url=chroma_url)
        return StoreContext(records, vectors, self.embedder())

    def make_store(self, context: StoreContext) -> MemoryStore:
        return TurnStore(context, name=self.store_name)

    def test_persists_across_restart(  # the base reopens local files; reopen the servers
        self, store: MemoryStore, context: StoreContext, backend_dir: Path
    ) -> None:
        self.write_dialogue(store, context)
        before = [r.item.id for r in self.retrieve(store, self.query(context))]
        reopened = self.open_context()
        try:
            again = self.make_store(reopened)
            after = [r.item.id for r in self.retrieve(again, self.query(reopened))]
        finally:
            reopened.records.close()
        assert before and after == before

    # A fresh process would rebuild this class without the fixture's server URLs and store
    # name; the restart above reopens the server connections instead.
    test_persists_across_a_fresh_process = None  # type: ignore[assignment]


# -- the backends on their own -----------------------------------------------------------------


def test_records_on_postgresql_keep_json_naive_times_and_provenance(database_url: str) -> None:
    records = Records(database_url)
    try:
        assert records.engine.dialect.name == "postgresql"
        session = records.start_session("ana", started_at=JAN)
        aware = datetime(2024, 1, 10, 12, 0, tzinfo=UTC) - timedelta(hours=1)
        # PostgreSQL cannot hold NUL in text: refused at the door, as on SQLite.
        with pytest.raises(InputError, match="control character U\\+0000"):
            records.add_turn("ana", session, "Ana", "user", "I live in Porto.\x00")
        turn = records.add_turn(
            "ana",
            session,
            "Ana",
            "user",
            "I live in Porto.",
            timestamp=aware,
            metadata={"tags": ["home", "family"], "nested": {"n": 1}},
        )
        stored = records.turns("ana")[0]
        assert stored.text == "I live in Porto." and stored.timestamp == datetime(2024, 1, 10, 11)
        assert stored.timestamp.tzinfo is None
        assert stored.metadata == {"tags": ["home", "family"], "nested": {"n": 1}}
        assert records.pending_turns("ana")[0].id == turn.id
        records.mark_memorized([turn.id])
        assert records.pending_turns("ana") == []
        receipt = records.forget("ana")
        assert receipt["turns"] == 1 and receipt["users"] == 1
    finally:
        records.close()


def test_unreachable_servers_are_storage_errors() -> None:
    closed = free_port()
    pytest.importorskip("psycopg", reason="psycopg is needed for PostgreSQL")
    with pytest.raises(StorageError):
        Records(f"postgresql+psycopg://postgres@127.0.0.1:{closed}/nothing")
    with pytest.raises(StorageError):
        VectorIndex(shared_embedder(), url=f"http://127.0.0.1:{closed}")


# -- Memory end to end over the servers --------------------------------------------------------


def test_memory_add_search_supersede_forget_on_servers(
    database_url: str, chroma_url: str, tmp_path: Path
) -> None:
    sam, eve = f"sam-{uuid.uuid4().hex[:8]}", f"eve-{uuid.uuid4().hex[:8]}"
    settings = {"model": "none", "env": {}, "database_url": database_url, "chroma_url": chroma_url}
    with Memory(tmp_path, **settings) as memory:  # type: ignore[arg-type]
        assert memory.records.engine.dialect.name == "postgresql"
        memory.add(
            [{"role": "user", "content": "I live in Boston.", "name": "Sam"}],
            user_id=sam,
            timestamp=JAN,
        )
        moved = memory.add(
            [{"role": "user", "content": "We moved to Denver last week.", "name": "Sam"}],
            user_id=sam,
            timestamp=JUNE,
        )
        memory.add("My cat Tiger sleeps all day.", user_id=eve, timestamp=JAN)
        assert moved.count("SUPERSEDE") == 2  # the fact, and the turn that stated Boston
        now = [r["memory"] for r in memory.search("Where does Sam live?", user_id=sam)]
        assert "Sam lives in Denver" in now and "Sam lives in Boston" not in now
        history = memory.search("Where does Sam live?", user_id=sam, include_history=True)
        boston = next(r for r in history.items if r["memory"] == "Sam lives in Boston")
        assert not boston["current"] and boston["invalid_at"] == JUNE
        assert [h["event"] for h in memory.history(boston["id"], user_id=sam)] == [
            "ADD",
            "SUPERSEDE",
        ]
        with pytest.raises(NotFoundError):
            memory.get(boston["id"], user_id=eve)
        assert all(r["user_id"] == eve for r in memory.search("Boston", user_id=eve).items)
        json.dumps(memory.export(sam), default=str)
        receipt = memory.forget(sam)
        assert receipt["turns"] == 2 and receipt["vectors"] >= 2  # the turns, and facts
        assert memory.search("Where does Sam live?", user_id=sam, include_history=True).items == []
    # Nothing went to the local data folder: both backends were the servers.
    assert not (tmp_path / "agentmem.sqlite").exists() and not (tmp_path / "chroma").exists()
    with Memory(tmp_path, **settings) as reopened:  # type: ignore[arg-type]
        found = reopened.search("Tiger the cat", user_id=eve)
        assert found.items and "Tiger" in found.items[0]["memory"]
        reopened.forget(eve)


def test_the_langgraph_store_on_postgresql(database_url: str, tmp_path: Path) -> None:
    from agentmem.langgraph import AgentMemStore

    user = f"ana-{uuid.uuid4().hex[:8]}"
    namespace = ("memories", user)
    settings = {"model": "none", "env": {}, "database_url": database_url, "stores": ("turns",)}
    with Memory(tmp_path, **settings) as memory:  # type: ignore[arg-type]
        store = AgentMemStore(memory)
        store.put(namespace, "home-1", {"content": "I live in Lisbon.", "n": 1})
        store.put(namespace, "home-2", {"content": "I moved to Berlin.", "n": 2})
        store.put((f"{user}_%",), "other", {"n": 3})
        found = store.search(namespace, query="Where do I live?")
        assert [item.key for item in found] == ["home-2"]
        assert [item.key for item in store.search(namespace, filter={"n": {"$gte": 1}})] == [
            "home-2"
        ]
        store.put(namespace, "home-2", {"content": "I moved to Munich.", "n": 2})
        assert [v.end_reason for v in store.versions(namespace, "home-2")] == ["replaced", ""]
        assert namespace in store.list_namespaces(prefix=("memories",))
        assert store.search((f"{user}_%",))[0].key == "other"
        assert memory.forget(user)["documents"] == 3  # ("<user>_%",) is the unscoped user's
        assert store.get(namespace, "home-1") is None
        memory.forget("langgraph")


# -- full-text search over turns on PostgreSQL -------------------------------------------------


def say(records: Records, user_id: str, text: str) -> Turn:
    return records.add_turn(user_id, records.start_session(user_id), user_id, "user", text)


def holding(records: Records, word: str) -> int:
    """How many rows of the search column hold ``word``, whoever said it."""
    query = text("SELECT count(*) FROM turns WHERE text_search @@ to_tsquery('simple', :word)")
    with records.engine.connect() as connection:
        return int(connection.execute(query, {"word": word}).scalar_one())


def test_turns_are_searched_by_their_words_within_one_user_on_postgresql(
    database_url: str,
) -> None:
    records = Records(database_url)
    try:
        mine = say(records, "alice", "The spare key is under the blue heron planter.")
        say(records, "alice", "We had soup.")
        say(records, "bob", "A heron landed on the blue roof.")
        other = say(records, "alice", "Blue skies all week.")
        read = say(records, "alice", "Zoë's e-mail came at 10:30 from the Café Über, didn’t it?")
        assert records.search_turns("alice", ["heron", "planter"], 5) == [mine.id]
        assert records.search_turns("alice", ["blue", "heron"], 5) == [mine.id, other.id]
        assert records.search_turns("bob", ["heron"], 5) != [mine.id]
        assert records.search_turns("alice", ['he"ron', "'", "a & b | !c"], 5) == []
        assert records.search_turns("alice", [], 5) == []
        assert records.search_turns("alice", ["heron"], 0) == []
        # Read as FTS5's unicode61 reads it: diacritics folded, any punctuation a separator.
        for word in ("zoe", "e-mail", "mail", "10:30", "cafe", "uber", "didn't", "didn"):
            assert records.search_turns("alice", [word], 5) == [read.id], word
        # A rare word outranks a common one said more often (BM25's IDF).
        say(records, "alice", "The blue car.")
        say(records, "alice", "A blue door.")
        common, rare = say(records, "alice", "Blue, blue."), say(records, "alice", "A quokka.")
        assert records.search_turns("alice", ["blue", "quokka"], 2) == [rare.id, common.id]
    finally:
        records.close()


def test_an_older_postgresql_database_gets_turn_search_on_open(database_url: str) -> None:
    first = Records(database_url)
    turn = say(first, "alice", "The spare key is under the heron planter.")
    with first.engine.begin() as connection:  # as a database written before the search
        connection.execute(text("DROP INDEX ix_turns_text_search"))
        connection.execute(text("ALTER TABLE turns DROP COLUMN text_search"))
    first.close()
    reopened = Records(database_url)
    try:
        assert reopened.search_turns("alice", ["heron"], 5) == [turn.id]
        assert reopened.turns("alice")[0].text == turn.text  # nothing lost on the way
        later = say(reopened, "alice", "The heron came back.")
        assert reopened.search_turns("alice", ["heron"], 5) == [later.id, turn.id]
    finally:
        reopened.close()
    again = Records(database_url)  # opening a migrated database changes nothing
    try:
        assert again.search_turns("alice", ["heron"], 5) == [later.id, turn.id]
    finally:
        again.close()


def test_erased_and_forgotten_turns_leave_the_postgresql_search(database_url: str) -> None:
    records = Records(database_url)
    try:
        secret = say(records, "alice", "My locker code is zanzibarquokka.")
        kept = say(records, "alice", "My locker is blue.")
        say(records, "bob", "My locker code is marimbaphone.")
        assert records.search_turns("alice", ["zanzibarquokka"], 5) == [secret.id]
        assert records.erase("alice", [], [secret.id]) == 1
        assert records.search_turns("alice", ["zanzibarquokka"], 5) == []
        assert holding(records, "zanzibarquokka") == 0  # the column went with the text
        assert records.search_turns("alice", ["locker"], 5) == [kept.id]
        assert "the records database (VACUUM)" in records.compact()
        records.forget("bob")
        assert holding(records, "marimbaphone") == 0
        assert records.search_turns("alice", ["locker"], 5) == [kept.id]
    finally:
        records.close()
