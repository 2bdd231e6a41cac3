"""Isolation: users with overlapping vocabularies never see, change or lose each other's memory.

Fifty users say sentences built from one small vocabulary (the same cities, pets, jobs and
relatives, the same assistant acknowledgement word for word), and every sentence a user
says also carries the user's own secret token. Writes and reads are interleaved at random
through every public entry point: the ``Memory`` API over every structure plus the fact
ledger, the LangChain retriever, the replay runner (one user per conversation) and the
chat app's commands.

An item is *foreign* to the user who asked when its ``user_id`` is another's, when one of
its source turns was written by another user, or when its text carries another user's
token. Texts alone cannot tell (``"Ana lives in Porto"`` is a fact of many users), hence
the provenance checks; and where the turns' texts are known, every vocabulary word of an
item must have been said in its own source turns, so content carried over under the
user's own turn ids is caught too. Every check also asserts that the asking user does get
items of their own, so an empty answer cannot pass for an isolated one.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Tree
from tui_pilot import say, settle

from agentmem.agent import Agent
from agentmem.config import load_config
from agentmem.errors import NotFoundError
from agentmem.factory import Components, build
from agentmem.langchain import AgentMemRetriever
from agentmem.memory import AddResult, ChangeResult, Memory, MemoryRecord
from agentmem.models.embeddings import CachingEmbedder, MiniLMEmbedder
from agentmem.replay import run_replay
from agentmem.storage.vectors import collection_name
from agentmem.testing import ScriptedChatModel
from agentmem.tui.app import ChatApp
from agentmem.tui.screens import ConfirmScreen
from agentmem.tui.widgets import ItemList
from agentmem.types import MemoryItem

#: A heavy suite: run with ``pytest -m heavy`` (CI runs it after the default run).
pytestmark = pytest.mark.heavy

SEED = 20240611
#: Fifty users; a few ids differ only in case, accent or a trailing space.
USERS = [*(f"u{n:02d}" for n in range(46)), "ana", "Ana", "ana ", "anä"]
#: Every structure, the ``turns`` baseline included, plus the fact ledger (on by default).
ALL_STORES = ("turns", "all")
START = datetime(2024, 1, 1, 9, 0)

CITIES = ("Porto", "Lisbon", "Boston", "Denver", "Leeds", "Bristol")
PETS = (("cat", "Miso"), ("dog", "Rex"), ("parrot", "Kiwi"))
JOBS = ("nurse", "baker", "pilot", "teacher", "florist")
RELATIVES = (("sister", "Ana"), ("brother", "Tom"), ("cousin", "Lea"))
VOCABULARY = {
    word.lower() for word in (*CITIES, *JOBS, *(w for pair in (*PETS, *RELATIVES) for w in pair))
}
#: The assistant's reply, the same for every user.
ACK = "Noted, I will remember that."
QUERIES = (
    "Where do I live?",
    "Where does my sister Ana live?",
    "What is my pet called?",
    "What is my job?",
    "Who lives in Porto?",
    "Tell me about Miso the cat.",
    "Which city did my brother Tom move to?",
)


def secrets_for(users: Sequence[str], seed: int) -> dict[str, str]:
    """Return a distinct random hex secret per user."""
    rng = random.Random(seed)
    found: dict[str, str] = {}
    while len(found) < len(users):
        secret = f"{rng.getrandbits(40):010x}"
        if secret not in found.values():
            found[users[len(found)]] = secret
    return found


def token(user: str, secret: str) -> str:
    return f"{user}-secret-{secret}"


def statement(rng: random.Random, user: str, secret: str) -> str:
    """Return a sentence from the shared vocabulary, signed with the user's token."""
    city = rng.choice(CITIES)
    pet, pet_name = rng.choice(PETS)
    relative, name = rng.choice(RELATIVES)
    said = rng.choice(
        (
            f"I live in {city}.",
            f"We moved to {city} last month.",
            f"My {relative} {name} lives in {city}.",
            f"I have a {pet} named {pet_name}.",
            f"I work as a {rng.choice(JOBS)}.",
            f"I work as a {rng.choice(JOBS)} in {city} now.",
        )
    )
    return f"{said} My code word is {token(user, secret)}."


@dataclass
class Owners:
    """Who wrote which turn (and what it said), and whose secret a text carries."""

    secrets: dict[str, str]
    turns: dict[int, str] = field(default_factory=dict)
    texts: dict[int, str] = field(default_factory=dict)

    def claim(self, user: str, turn_ids: Sequence[int], texts: Sequence[str]) -> None:
        for turn_id, text in zip(turn_ids, texts, strict=True):
            self.turns[turn_id] = user
            self.texts[turn_id] = text.lower()

    def forget(self, user: str) -> None:
        self.turns = {t: u for t, u in self.turns.items() if u != user}
        self.texts = {t: text for t, text in self.texts.items() if t in self.turns}

    def tokens_in(self, text: str) -> set[str]:
        """Return the users whose secret appears in ``text``."""
        lowered = text.lower()
        return {user for user, secret in self.secrets.items() if secret in lowered}

    def foreign(
        self, owner: str, *, text: str, turn_ids: Iterable[int], user_id: str | None = None
    ) -> list[str]:
        """Return why an item shown to ``owner`` is not theirs (empty when it is)."""
        problems = []
        if user_id is not None and user_id != owner:
            problems.append(f"user_id {user_id!r}")
        turn_ids = list(turn_ids)
        for turn_id in turn_ids:
            if self.turns.get(turn_id) != owner:
                problems.append(f"turn #{turn_id} of {self.turns.get(turn_id)!r}")
        problems += [f"token of {u}" for u in sorted(self.tokens_in(text) - {owner})]
        # Content carried over under the owner's turn ids (a cache keyed by turn id, say)
        # passes the checks above: what the item says must have been said in its turns.
        if turn_ids and all(t in self.texts for t in turn_ids):
            said = " ".join(self.texts[t] for t in turn_ids)
            words = set(re.findall(r"[a-z]+", text.lower())) & VOCABULARY
            problems += [f"{word!r} unsaid" for word in sorted(words) if word not in said]
        return problems

    def check_records(self, owner: str, records: Iterable[MemoryRecord], where: str) -> int:
        """Assert no record is foreign to ``owner``; return how many carry their own token."""
        own = 0
        for record in records:
            problems = self.foreign(
                owner,
                text=record["text"],
                turn_ids=record["source_turn_ids"],
                user_id=record["user_id"],
            )
            # A change shown beside the text: the new value was said in the turn that
            # made the change, the old one in the item's own turns.
            for change in record["changes"]:
                new = change["replaced_by"] or ""
                problems += self.foreign(owner, text=new, turn_ids=[change["turn_id"]])
                problems += self.foreign(
                    owner, text=change["value"], turn_ids=record["source_turn_ids"]
                )
            assert not problems, f"{where}: {owner} got {record['memory']!r}: {problems}"
            own += owner in self.tokens_in(record["memory"])
        return own


@dataclass
class World:
    """One memory shared by every user, and who wrote what."""

    memory: Memory
    owners: Owners
    users: list[str]
    clock: datetime = START

    def say(self, rng: random.Random, user: str, exchanges: int = 1) -> AddResult:
        """Add exchanges for ``user`` in one call; assert what it changed is theirs alone."""
        self.clock += timedelta(minutes=7)
        secret = self.owners.secrets[user]
        messages = [
            message
            for _ in range(exchanges)
            for message in (
                {"role": "user", "content": statement(rng, user, secret)},
                {"role": "assistant", "content": ACK},
            )
        ]
        result = self.memory.add(messages, user_id=user, timestamp=self.clock)
        assert result.ok, result.failures
        self.owners.claim(user, result.turn_ids, [m["content"] for m in messages])
        self.check_changes(user, result, "add")
        return result

    def check_changes(self, user: str, result: ChangeResult, where: str) -> None:
        """Assert every item a change touched (or replaced) belongs to ``user``."""
        ids = {e["id"] for e in result.events} | {p for e in result.events for p in e["previous"]}
        ids |= {e["superseded_by"] for e in result.events if e["superseded_by"]}
        touched = self.memory.records.items(ids)
        assert {i.id for i in touched} == ids
        for item in touched:
            problems = self.owners.foreign(
                user, text=item.text, turn_ids=item.source_turn_ids, user_id=item.user_id
            )
            assert not problems, f"{where} by {user} touched {item.text!r}: {problems}"


def settle_recall(memory: Memory, users: Iterable[str]) -> None:
    """Search once for each user, so that the next searches change nothing.

    The first recall that meets an item asserting a superseded value invalidates it (and
    MemTree re-aggregates the nodes above it), which changes what later searches return.
    """
    for user in users:
        memory.search(QUERIES[1], user_id=user, top_k=200)


def snapshot(memory: Memory, user: str) -> tuple[Any, ...]:
    """Return what memory holds for ``user``: their items with history, and a wide search."""
    found = memory.search(QUERIES[1], user_id=user, top_k=200)
    items = sorted(
        (r["id"], r["memory"], r["current"], tuple(r["source_turn_ids"]), r["superseded_by"])
        for r in memory.get_all(user_id=user, include_history=True)
    )
    return items, frozenset(r["id"] for r in found), memory.records.count_turns(user)


@pytest.fixture(scope="module")
def world(embedder: MiniLMEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Return a memory with every structure in which 50 users said two things each.

    The users come in a random order, so neighbouring turn ids and items belong to
    different users (the tests interleave single exchanges further).
    """
    config = load_config(
        env={}, data_dir=tmp_path_factory.mktemp("isolation"), model="none", stores=ALL_STORES
    )
    components = build(config, model=None, embedder=CachingEmbedder(embedder))
    memory = Memory.from_components(components)
    rng = random.Random(SEED)
    owners = Owners(secrets_for(USERS, SEED))
    world = World(memory, owners, list(USERS))
    for user in rng.sample(USERS, len(USERS)):
        world.say(rng, user, exchanges=2)
    yield world
    # Not memory.close(): consolidating fifty open sessions would only cost time here.
    memory.components.close()


# -- the Memory API --------------------------------------------------------------------------


def test_every_structure_is_configured(world: World) -> None:
    names = {s.name for s in world.memory.manager.structures}
    assert names == {"facts", "turns", "memtree", "summary", "memo", "graph"}


def test_randomised_calls_through_the_memory_api_never_cross_users(world: World) -> None:
    memory, owners = world.memory, world.owners
    rng = random.Random(SEED + 1)
    # A user who stays silent meanwhile: nothing the others do may change their memory.
    sentinel, talkers = world.users[-1], world.users[:-1]
    settle_recall(memory, [sentinel])
    frozen = snapshot(memory, sentinel)
    own_hits = searches = refusals = 0
    operations = ["add", "search", "probe", "get_all", "get", "cross", "end_session"]
    for _ in range(150):
        user = rng.choice(talkers)
        operation = rng.choices(operations, weights=(3, 6, 3, 2, 3, 3, 1))[0]
        if operation == "add":
            world.say(rng, user)
        elif operation in ("search", "probe"):
            if operation == "search":
                query = rng.choice(QUERIES)
            else:  # another user's token: the strongest pull towards their items
                other = rng.choice([u for u in world.users if u != user])
                query = f"What is the code word {token(other, owners.secrets[other])}?"
            found = memory.search(query, user_id=user, top_k=rng.choice((5, 10, 25)))
            assert found.items, f"{user} found nothing for {query!r}"
            own_hits += owners.check_records(user, found.items, f"search {query!r}") > 0
            searches += 1
        elif operation == "get_all":
            records = memory.get_all(user_id=user, include_history=rng.random() < 0.5)
            assert owners.check_records(user, records, "get_all") > 0
        elif operation == "get":
            mine = memory.get_all(user_id=user)
            record = memory.get(rng.choice(mine)["id"], user_id=user)
            owners.check_records(user, [record], "get")
            for entry in memory.history(record["id"], user_id=user):
                for text in (entry["old_memory"] or "", entry["new_memory"] or ""):
                    assert owners.tokens_in(text) <= {user}, f"history: {text!r}"
        elif operation == "cross":
            # Another user's item, named by its id: refused like an unknown id.
            other = rng.choice([u for u in world.users if u != user])
            theirs = rng.choice(memory.get_all(user_id=other))
            calls = (
                partial(memory.get, theirs["id"], user_id=user),
                partial(memory.history, theirs["id"], user_id=user),
                partial(memory.update, theirs["id"], f"hijacked by {user}", user_id=user),
                partial(memory.delete, theirs["id"], user_id=user),
            )
            for call in calls:
                with pytest.raises(NotFoundError):
                    call()
                refusals += 1
            after = memory.get(theirs["id"], user_id=other)
            assert (after["memory"], after["current"]) == (theirs["memory"], theirs["current"])
        else:
            world.check_changes(user, memory.end_session(user), "end_session")
    assert searches and own_hits >= searches // 2  # most searches find the user's own turns
    assert refusals
    assert snapshot(memory, sentinel) == frozen
    # Supersession stayed within each user: no item was replaced by another user's item.
    for user in world.users:
        records = memory.get_all(user_id=user, include_history=True)
        replacements = {r["superseded_by"] for r in records if r["superseded_by"]}
        for item_id in replacements:
            assert memory.get(item_id, user_id=user)["user_id"] == user


def test_the_langchain_retriever_returns_only_the_users_own_documents(world: World) -> None:
    owners = world.owners
    rng = random.Random(SEED + 2)
    for user in rng.sample(world.users[:-1], 8):
        retriever = AgentMemRetriever(memory=world.memory, user_id=user, top_k=10)
        other = rng.choice([u for u in world.users if u != user])
        queries = [*rng.sample(QUERIES, 3), f"code word {token(other, owners.secrets[other])}"]
        own = 0
        for query in queries:
            docs = retriever.invoke(query)
            assert docs, f"{user} retrieved nothing for {query!r}"
            for doc in docs:
                problems = owners.foreign(
                    user, text=doc.metadata["text"], turn_ids=doc.metadata["source_turn_ids"]
                )
                for change in doc.metadata["changes"]:  # shown beside the text
                    turn = [change["turn_id"]]
                    problems += owners.foreign(
                        user, text=change["replaced_by"] or "", turn_ids=turn
                    )
                assert not problems, f"{user} retrieved {doc.page_content!r}: {problems}"
                own += user in owners.tokens_in(doc.page_content)
        assert own, f"{user} never retrieved a document with their own token"


def test_forget_erases_one_user_and_leaves_every_other_intact(world: World) -> None:
    memory, owners = world.memory, world.owners
    # The user who wrote last: SQLite may hand their turn ids to the next writer.
    victim = owners.turns[max(owners.turns)]
    others = [u for u in world.users if u != victim]
    settle_recall(memory, others)
    before = {user: snapshot(memory, user) for user in others}
    old_ids = [r["id"] for r in memory.get_all(user_id=victim, include_history=True)]
    assert old_ids and memory.search(QUERIES[0], user_id=victim).items

    receipt = memory.forget(victim)
    owners.forget(victim)

    assert receipt["turns"] > 0 and receipt["memory items"] == len(old_ids)
    assert memory.get_all(user_id=victim, include_history=True) == []
    for query in QUERIES:
        assert memory.search(query, user_id=victim).items == []
    exported = memory.export(victim)
    assert (exported["turns"], exported["items"], exported["sessions"]) == ([], [], [])
    assert memory.records.turns(victim) == []
    for item_id in old_ids:
        with pytest.raises(NotFoundError):
            memory.get(item_id, user_id=victim)
        with pytest.raises(NotFoundError):
            memory.history(item_id, user_id=victim)
    vectors = memory.components.vectors
    assert {s.name: vectors.count(s.name, victim) for s in memory.manager.structures} == {
        s.name: 0 for s in memory.manager.structures
    }
    digest = collection_name("any", victim).rsplit("-", 1)[1]
    assert [name for name in vectors.collection_names() if name.endswith(digest)] == []
    # Everyone else: the same items, history, search results and turns as before.
    assert {user: snapshot(memory, user) for user in others} == before

    # Writing on: the others' new turns may reuse the victim's turn ids, and the victim
    # starts afresh; nothing forgotten comes back, to anyone.
    rng = random.Random(SEED + 3)
    for user in [*rng.sample(others, 5), victim]:
        world.say(rng, user)
    fresh = memory.get_all(user_id=victim, include_history=True)
    assert fresh and not {r["id"] for r in fresh} & set(old_ids)
    assert owners.check_records(victim, fresh, "get_all after forget") > 0
    for user in [victim, *rng.sample(others, 10)]:
        for query in (QUERIES[0], f"code word {token(victim, owners.secrets[victim])}"):
            owners.check_records(user, memory.search(query, user_id=user, top_k=25), "search")


def test_forget_through_another_memory_on_the_same_data_dir_leaks_nothing(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    """Forget a user through one Memory while another serves the same SQLite data dir.

    Turn ids are SQLite rowids: once the forgotten user's turns (the latest) are deleted,
    the next turn gets the same id, and the serving Memory's fact extraction cache, keyed
    by turn id and never told of the erasure, answers with the forgotten user's facts.
    """

    def open_memory() -> Memory:
        config = load_config(env={}, data_dir=tmp_path, model="none", stores=ALL_STORES)
        return Memory.from_components(build(config, model=None, embedder=CachingEmbedder(embedder)))

    users = ["ada", "ben"]
    owners = Owners(secrets_for(users, SEED + 6))
    said = {
        "ada": f"I live in Porto. My code word is {token('ada', owners.secrets['ada'])}.",
        "ben": f"I have a dog named Rex. My code word is {token('ben', owners.secrets['ben'])}.",
    }
    with open_memory() as serving, open_memory() as admin:
        added = serving.add(said["ada"], user_id="ada")
        owners.claim("ada", added.turn_ids, [said["ada"]])
        admin.forget("ada")  # e.g. an erasure request handled by another process
        owners.forget("ada")
        added = serving.add(said["ben"], user_id="ben")
        owners.claim("ben", added.turn_ids, [said["ben"]])
        records = serving.get_all(user_id="ben", include_history=True)
        assert owners.check_records("ben", records, "get_all") > 0
        facts = [r["memory"] for r in records if r["store"] == "facts"]
        assert any("Rex" in fact for fact in facts), facts


# -- the replay runner -----------------------------------------------------------------------

CONVERSATIONS = ("conv-a", "conv-b", "conv-c")
#: Said in every conversation, word for word.
SHARED_TURN = "That sounds lovely, tell me more."


def conversation(rng: random.Random, sample_id: str, secret: str) -> dict[str, Any]:
    """Return a LoCoMo sample: the same two speakers and vocabulary in every conversation."""
    signed = f"(code word {token(sample_id, secret)})"
    sessions: dict[str, Any] = {}
    for number, stamp in ((1, "10:15 am on 2 March, 2023"), (2, "6:40 pm on 19 June, 2023")):
        pet, pet_name = rng.choice(PETS)
        relative, name = rng.choice(RELATIVES)
        said = [
            ("Nora", f"I live in {rng.choice(CITIES)} now {signed}."),
            ("Felix", SHARED_TURN),
            ("Nora", f"I work as a {rng.choice(JOBS)} {signed}."),
            ("Felix", f"My {relative} {name} lives in {rng.choice(CITIES)} {signed}."),
            ("Nora", f"I have a {pet} named {pet_name} {signed}."),
            ("Felix", SHARED_TURN),
        ]
        sessions[f"session_{number}_date_time"] = stamp
        sessions[f"session_{number}"] = [
            {"speaker": speaker, "dia_id": f"D{number}:{i}", "text": text}
            for i, (speaker, text) in enumerate(said, 1)
        ]
    return {
        "sample_id": sample_id,
        "conversation": {"speaker_a": "Nora", "speaker_b": "Felix", **sessions},
        "qa": [
            {"question": "Where does Nora live now?", "answer": "-", "evidence": [], "category": 4},
            {"question": "What pet does Nora have?", "answer": "-", "evidence": [], "category": 4},
            {"question": "What is Nora's job?", "answer": "-", "evidence": [], "category": 4},
            {"question": "Where does Felix's sister live?", "evidence": [], "category": 5},
        ],
    }


def test_replay_recalls_only_from_each_questions_own_conversation(
    embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    rng = random.Random(SEED + 4)
    owners = Owners(secrets_for(CONVERSATIONS, SEED + 4))
    samples = [conversation(rng, c, owners.secrets[c]) for c in CONVERSATIONS]
    for sample in samples:  # a question naming another conversation's token
        other = rng.choice([c for c in CONVERSATIONS if c != sample["sample_id"]])
        probe = f"What is the code word {token(other, owners.secrets[other])}?"
        sample["qa"].append({"question": probe, "evidence": [], "category": 5})
    path = tmp_path / "shared_vocabulary.json"
    path.write_text(json.dumps(samples), encoding="utf-8")

    run = run_replay(
        [path],
        configurations="all,turns",
        out_dir=tmp_path / "out",
        budget=2000,
        k=20,
        embedder=embedder,
        console=Console(file=io.StringIO()),
    )

    dia_ids = {f"D{s}:{i}" for s in (1, 2) for i in range(1, 7)}
    configs = {o.config for o in run.outputs}
    assert configs == {"all", "turns", "recent", "similarity"}
    assert len(run.outputs) == len(configs) * len(CONVERSATIONS) * 5
    for output in run.outputs:
        where = f"{output.config} · {output.question_id} ({output.question!r})"
        assert output.items, f"{where}: nothing recalled"
        own = 0
        for item in output.items:
            # The runner names only the asking conversation's turns: a foreign item would
            # come out with no dia_ids at all.
            assert item.dia_ids and set(item.dia_ids) <= dia_ids, f"{where}: {item}"
            foreign = owners.tokens_in(item.text) - {output.sample_id}
            assert not foreign, f"{where}: {item.text!r} is from {foreign}"
            own += output.sample_id in owners.tokens_in(item.text)
        assert own, f"{where}: no item carries the conversation's own token"


# -- the chat app ----------------------------------------------------------------------------

APP_USERS = ("alice", "bruno", "chloe")
SIZE = (130, 40)


@pytest.fixture
def app_components(embedder: MiniLMEmbedder, tmp_path: Path) -> Iterator[Components]:
    config = load_config(
        env={}, data_dir=tmp_path, model="none", stores=ALL_STORES, user_id=APP_USERS[0]
    )
    components = build(config, model=None, embedder=CachingEmbedder(embedder))
    yield components
    components.close()


async def switch_user(pilot: Pilot[None], user: str) -> None:
    await pilot.press("ctrl+o")
    await pilot.pause()
    await pilot.press("ctrl+u", *user, "enter")
    await settle(pilot)
    app = pilot.app
    assert isinstance(app, ChatApp) and app.agent.user_id == user


def tree_items(tree: Tree[MemoryItem | None]) -> list[MemoryItem]:
    found, stack = [], [tree.root]
    while stack:
        node = stack.pop()
        if node.data is not None:
            found.append(node.data)
        stack.extend(node.children)
    return found


def panel_items(app: ChatApp) -> dict[str, list[MemoryItem]]:
    """Return every item the memory panel shows, by list or tree."""
    shown = {
        name: [line.item for line in app.query_one(f"#{name}", ItemList).entries if line.item]
        for name in ("recalled", "changes", "facts")
    }
    for browser in app.query(".browser").results(Tree):  # every structure's outline
        shown[str(browser.id).removeprefix("browse-")] = tree_items(browser)
    return shown


def stored(components: Components, user: str) -> list[tuple[str, str, bool]]:
    """Return the user's items in every structure, with history, as the records hold them."""
    records = components.records
    return sorted(
        (store.name, item.id, item.current)
        for store in components.manager.structures
        for item in records.store_items(store.name, user, current_only=False)
    )


@pytest.mark.asyncio
async def test_the_chat_app_shows_each_user_only_their_own_memory(
    app_components: Components,
) -> None:
    rng = random.Random(SEED + 5)
    owners = Owners(secrets_for(APP_USERS, SEED + 5))
    moments = (START + timedelta(minutes=m) for m in range(0, 10_000, 3))
    model = ScriptedChatModel(default=ACK)
    agent = Agent(
        app_components.manager,
        model,
        user_id=APP_USERS[0],
        session_id=f"{APP_USERS[0]}-1",
        clock=lambda: next(moments),
    )
    app = ChatApp(app_components, agent, show_timings=False)
    records = app_components.records
    structures = app_components.manager.structures

    def check_panel(user: str) -> None:
        for someone in APP_USERS:
            said = records.turns(someone)
            owners.claim(someone, [t.id for t in said], [t.text for t in said])
        shown = panel_items(app)
        for name, items in shown.items():
            for item in items:
                problems = owners.foreign(
                    user, text=item.text, turn_ids=item.source_turn_ids, user_id=item.user_id
                )
                assert not problems, f"{user}'s #{name} shows {item.text!r}: {problems}"
        assert shown["recalled"] and shown["facts"] and shown["memtree"]
        assert any(user in owners.tokens_in(i.text) for i in shown["recalled"])
        prompt = "\n".join(m.content for m in model.calls[-1].messages)
        assert owners.tokens_in(prompt) == {user}, "the model saw another user's memory"

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for user in APP_USERS:
            if app.agent.user_id != user:
                await switch_user(pilot, user)
            for _ in range(2):
                await say(pilot, statement(rng, user, owners.secrets[user]))
        # Switching away ended each user's session: answers come from long-term memory.
        app.query_one("#memory-tabs").active = "tab-browse"  # type: ignore[attr-defined]
        app.query_one("#browse-tabs").active = "tab-graph"  # type: ignore[attr-defined]
        for user in APP_USERS:
            if app.agent.user_id != user:
                await switch_user(pilot, user)
            entity = app.query_one("#focus-graph")
            entity.focus()
            await pilot.press(*"Porto", "enter")
            await settle(pilot)
            assert app.browse_focus == {"graph": "Porto"}
            await say(pilot, f"{rng.choice(QUERIES)} And what is my code word?")
            check_panel(user)

        # Forget one user through the app; the others keep everything.
        victim, kept = APP_USERS[1], [u for u in APP_USERS if u != APP_USERS[1]]
        await switch_user(pilot, victim)  # (ends the session of the user switched from)
        before = {user: stored(app_components, user) for user in kept}
        assert all(before.values())
        await pilot.press("f8")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#yes")
        await settle(pilot)
        assert records.turns(victim) == [] and stored(app_components, victim) == []
        vectors = app_components.vectors
        assert [s.name for s in structures if vectors.count(s.name, victim)] == []
        assert [note for note in app.notices if note.title == "Forgotten"]
        assert {user: stored(app_components, user) for user in kept} == before
        for user in kept:
            await switch_user(pilot, user)
            facts = [line.item for line in app.query_one("#facts", ItemList).entries if line.item]
            assert sorted(("facts", i.id, i.current) for i in facts) == [
                entry for entry in before[user] if entry[0] == "facts"
            ]
            await say(pilot, f"{QUERIES[0]} And what is my code word?")
            check_panel(user)
