"""The chat app, driven by Pilot against real components (SQLite, chromadb, MiniLM) in tmp dirs.

Most tests share one set of components and keep apart by user id; the snapshot tests build
their own, so turn ids and scores on screen do not depend on which tests ran before.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Footer, Static, TabbedContent
from tui_pilot import say, settle

from agentmem.agent import Agent
from agentmem.config import Config, load_config
from agentmem.factory import Components, build, build_model
from agentmem.prompts import RECALL_ONLY_SHOWN, is_question, recall_only_answer
from agentmem.protocols import ChatModel, StoreContext
from agentmem.storage.records import new_item_id
from agentmem.stores.graph import GraphStore
from agentmem.stores.memo import MemoStore
from agentmem.stores.memtree import MemTreeStore
from agentmem.stores.summary import SummaryStore
from agentmem.testing import FakeOpenAIServer, Fault, ScriptedChatModel
from agentmem.tui.app import ChatApp
from agentmem.tui.conversation import SHOWN_LAST_SESSION_TURNS, Conversation
from agentmem.tui.memory import RecallSwitches
from agentmem.tui.screens import ConfirmScreen, HistoryScreen
from agentmem.tui.widgets import Divider, HistoryInput, ItemList, Reply, UserMessage
from agentmem.types import MemoryItem

SIZE = (130, 40)
NOON = datetime(2026, 1, 5, 12, 0)


def fixed_clock() -> datetime:
    return NOON


def make_components(data_dir: Path) -> Components:
    config = load_config(env={}, data_dir=data_dir, model="none", stores="turns", user_id="ana")
    return build(config)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Components]:
    """Components shared by the behaviour tests (each test talks as its own user)."""
    components = make_components(tmp_path_factory.mktemp("tui"))
    yield components
    components.close()


def make_app(
    components: Components,
    user_id: str,
    model: ChatModel | None = None,
) -> ChatApp:
    agent = Agent(
        components.manager, model, user_id=user_id, session_id=f"{user_id}-1", clock=fixed_clock
    )
    return ChatApp(components, agent, show_timings=False)


def steady_cursor(pilot: Pilot[None]) -> None:
    """Stop the input's cursor blinking, so a screenshot does not depend on timing."""
    pilot.app.query_one("#prompt", HistoryInput).cursor_blink = False


def list_texts(app: ChatApp, selector: str) -> list[str]:
    return [
        f"{line.badge} {line.text} {' '.join(line.notes)}"
        for line in app.query_one(selector, ItemList).entries
    ]


def replies(app: ChatApp) -> list[Reply]:
    return list(app.query(Reply))


def close_model(model: object) -> None:
    """Close a model built by the factory, through its retry and metering wrappers."""
    while model is not None:
        close = getattr(model, "close", None)
        if callable(close):
            close()
        model = getattr(model, "inner", None)


def errors(app: ChatApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app.notices if n.severity == "error"]


# -- talking --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_structures_chosen_in_the_app_are_kept_for_the_next_launch(
    tmp_path: Path,
) -> None:
    def launch_config(**flags: str) -> Config:  # as `agentmem chat` loads it
        return load_config(env={}, data_dir=tmp_path, model="none", chat_choices=True, **flags)

    config = launch_config(stores="turns,memo")  # agentmem chat --stores turns,memo
    components = build(config)
    try:
        app = ChatApp(components, Agent(components.manager, None, user_id="ana"))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.toggle_structure("memo")  # switched off for recall
            await pilot.pause()
    finally:
        components.close()

    again = launch_config()  # relaunched without --stores
    assert again.stores == ("turns", "memo")
    components = build(again)
    try:
        app = ChatApp(components, Agent(components.manager, None, user_id="ana"))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.switches.disabled == {"memo"}
            assert "recall from: facts, turns" in str(app.query_one("#status", Static).render())
    finally:
        components.close()
    assert launch_config(stores="turns").stores == ("turns",)  # a flag still wins


@pytest.mark.asyncio
async def test_f2_puts_the_arrow_keys_in_the_recalled_list(shared: Components) -> None:
    app = make_app(shared, "arrows")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await say(pilot, "My sister Ana lives in Porto.")
        await say(pilot, "Where does my sister live?")
        await pilot.press("f2")
        recalled = app.query_one("#recalled", ItemList)
        assert app.focused is recalled  # no Tab presses needed
        await pilot.press("down")
        await pilot.pause()
        assert recalled.highlighted is not None
        line = recalled.entries[recalled.highlighted]
        assert line.item is not None and app.selected == line.item  # its sources shown
        await pilot.press("escape")
        assert app.focused is app.query_one("#prompt", HistoryInput)
        await pilot.press("f3")
        assert app.focused is app.query_one("#changes", ItemList)


@pytest.mark.asyncio
async def test_a_message_shows_the_streamed_reply_and_what_was_recalled(shared: Components) -> None:
    model = ScriptedChatModel(["Noted.", "Your sister lives in Porto."])
    app = make_app(shared, "talk", model)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await say(pilot, "My sister Ana lives in Porto.")
        await pilot.press("ctrl+n")  # a new session: the fact now comes from long-term memory
        await settle(pilot)
        await say(pilot, "Where does my sister live?")
        answer = replies(app)[-1]
        assert answer.source == "Your sister lives in Porto."
        assert "<memory>" in model.calls[-1].messages[0].content
        recalled = list_texts(app, "#recalled")
        # A rank and a relevance bar, not a raw fused score.
        assert any("facts" in line and "Porto" in line and "▰" in line for line in recalled)
        assert not any("score" in line for line in recalled)
        assert any("from turn #" in line for line in recalled)
        status = str(app.query_one("#status", Static).render())
        assert "scripted" in status and "recall from: facts, turns" in status
        assert "prompt" in status and " ms" not in status  # timings hidden on request
        # Highlighting a recalled item shows its source turn, and marks it in the chat.
        recalled_list = app.query_one("#recalled", ItemList)
        recalled_list.focus()
        recalled_list.highlighted = next(
            i
            for i, line in enumerate(recalled_list.entries)
            if line.item and "Porto" in line.item.text
        )
        await pilot.pause()
        details = str(app.query_one("#details-text", Static).render())
        assert "user: My sister Ana lives in Porto." in details
        assert app.query(".-source")
        # Up recalls earlier inputs, newest first; down comes back to the draft.
        prompt = app.query_one("#prompt", HistoryInput)
        prompt.focus()
        prompt.value = "draft"
        await pilot.press("up")
        assert prompt.value == "Where does my sister live?"
        await pilot.press("up")
        assert prompt.value == "My sister Ana lives in Porto."
        await pilot.press("down", "down")
        assert prompt.value == "draft"


@pytest.mark.asyncio
async def test_without_a_model_answers_are_recall_only_and_labelled(shared: Components) -> None:
    app = make_app(shared, "norecall")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "No chat model is configured" in replies(app)[0].source
        await say(pilot, "My cat is called Miso.")
        await pilot.press("ctrl+n")
        await settle(pilot)
        await say(pilot, "What is my cat called?")
        answer = replies(app)[-1]
        assert answer.source.startswith("[recall only")
        assert "Miso" in answer.source
        assert "recall only" in str(answer.border_title)
        assert "no model (recall-only answers)" in str(app.query_one("#status", Static).render())
        session = app.agent.session_id
    # Continuing the session (``agentmem chat --session``) shows what was said, labelled.
    agent = Agent(shared.manager, None, user_id="norecall", session_id=session, clock=fixed_clock)
    app = ChatApp(shared, agent, show_timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        earlier = replies(app)[1:]
        assert [reply.source.startswith("[recall only") for reply in earlier] == [True]
        assert earlier[0].has_class("-recall-only")


@pytest.mark.asyncio
async def test_a_superseding_statement_shows_in_changes_and_moves_the_old_fact_to_history(
    shared: Components,
) -> None:
    app = make_app(shared, "mover", ScriptedChatModel(default="Noted."))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await say(pilot, "I live in Boston.")
        await say(pilot, "We moved to Denver.")
        changes = list_texts(app, "#changes")
        assert any(
            line.startswith("ADD user lives in Denver") and "replaces: user lives in Boston" in line
            for line in changes
        )
        facts = app.query_one("#facts", ItemList).entries
        history_at = next(i for i, line in enumerate(facts) if line.badge == "History")
        current = [line.text for line in facts[:history_at] if line.item]
        old = [line for line in facts[history_at:] if line.item]
        assert current == ["user lives in Denver"]
        assert [line.text for line in old] == ["user lives in Boston"]
        assert any("residence: Boston → Denver (turn " in note for note in old[0].notes)
        assert any("now: user lives in Denver" in note for note in old[0].notes)
        # The history command shows the recorded versions of the selected fact.
        assert old[0].item is not None
        app.select_item(old[0].item)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, HistoryScreen)
        actions = [line.badge for line in app.screen.query_one("#history", ItemList).entries]
        assert actions == ["ADD", "SUPERSEDE"]


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", ["status-500", "unreachable"])
async def test_a_failing_endpoint_notifies_with_a_hint_and_keeps_the_turn(
    shared: Components, failure: str
) -> None:
    with FakeOpenAIServer() as server:
        if failure == "unreachable":
            with socket.socket() as probe:  # a port nothing listens on
                probe.bind(("127.0.0.1", 0))
                base_url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
        else:
            server.fail(Fault.status(500))
            server.script("Lisbon, noted.")
            base_url = server.base_url
        config = load_config(
            env={},
            data_dir=shared.config.data_dir,
            model="openai:fake-chat",
            openai_base_url=base_url,
            retries=1,
            timeout=2,
        )
        model = build_model(config)
        user = f"failing-{failure}"
        app = make_app(shared, user, model)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot)
                await say(pilot, "My brother Tom lives in Lisbon.")
                (error,) = errors(app)
                assert error.startswith("The model failed:")
                assert "Your message was saved (turn #" in error
                if failure == "unreachable":
                    assert "cannot reach" in error and "OPENAI_BASE_URL" in error
                else:
                    assert "HTTP 500" in error
                assert replies(app)[-1].has_class("-failed")
                assert any("Tom lives in Lisbon" in line for line in list_texts(app, "#changes"))
                # The app is still usable; once the endpoint answers, the reply streams in.
                assert app.busy is None and app.is_running
                if failure == "status-500":
                    await say(pilot, "Where does Tom live?")
                    assert replies(app)[-1].source == "Lisbon, noted."
                    assert len(errors(app)) == 1
        finally:
            close_model(model)
    assert shared.records.turns(user)[0].text == "My brother Tom lives in Lisbon."


# -- commands -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_forget_asks_first_then_erases_the_user(shared: Components) -> None:
    app = make_app(shared, "forgetme", ScriptedChatModel(default="Noted."))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await say(pilot, "My sister Ana lives in Porto.")
        assert shared.records.turns("forgetme")
        await pilot.press("f8")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # no: nothing happens
        await settle(pilot)
        assert shared.records.turns("forgetme")
        await pilot.press("f8")
        await pilot.pause()
        await pilot.click("#yes")
        await settle(pilot)
        assert shared.records.turns("forgetme") == []
        assert shared.records.store_items("facts", "forgetme", current_only=False) == []
        notes = [n.message for n in app.notices if n.title == "Forgotten"]
        assert notes and "turns 2" in notes[0] and "rows:" not in notes[0]
        assert len(replies(app)) == 1  # the conversation starts over
        assert [line for line in app.query_one("#facts", ItemList).entries if line.item] == []


@pytest.mark.asyncio
async def test_switch_user_rebuilds_the_agent_and_shows_their_memory(shared: Components) -> None:
    app = make_app(shared, "first", ScriptedChatModel(default="Noted."))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await say(pilot, "I work as a nurse.")
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("ctrl+u", *"second", "enter")  # clear the current id, type another
        await settle(pilot)
        assert app.agent.user_id == "second" and app.agent.memory is app.memory
        assert app.sub_title == "user second"
        assert [line.text for line in app.query_one("#facts", ItemList).entries if line.item] == []
        await say(pilot, "I work as a pilot.")
    assert [t.text for t in shared.records.turns("second")] == ["I work as a pilot.", "Noted."]
    assert [t.text for t in shared.records.turns("first")] == ["I work as a nurse.", "Noted."]


@pytest.mark.asyncio
async def test_export_copy_and_palette_commands(shared: Components) -> None:
    app = make_app(shared, "exporter", ScriptedChatModel(default="Porto, I remember."))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await say(pilot, "My sister Ana lives in Porto.")
        app.copy_to_clipboard("")
        await pilot.press("ctrl+p")  # the command palette
        await pilot.press(*"copy last answer")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.clipboard == "Porto, I remember."
        # OSC 52 cannot confirm: the notice says "sent", and a file holds a sure copy.
        copied = app.notices[-1].message
        assert "if your terminal supports it" in copied and "Copied" not in copied
        saved = shared.config.data_dir / "last-answer.txt"
        assert saved.read_text(encoding="utf-8") == "Porto, I remember.\n"
        assert str(saved) in copied
        await pilot.press("ctrl+s")
        await settle(pilot)
        (note,) = [n.message for n in app.notices if n.title == "Exported"]
        path = Path(note.rsplit(" to ", 1)[1])
        assert path.parent == shared.config.data_dir and path.name.startswith("export-exporter-")
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["user_id"] == "exporter" and len(data["turns"]) == 2
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"New session", "Switch user", "Forget user", "Export user"} <= titles
        assert {
            "Toggle recall from facts",
            "Toggle recall from turns",
            "Copy last answer",
        } <= titles
        # A palette toggle switches its structure, and says so; a second switches it back.
        (toggle,) = [
            command
            for command in app.get_system_commands(app.screen)
            if command.title == "Toggle recall from facts"
        ]
        toggle.callback()
        assert app.switches.disabled == {"facts"}
        assert app.notices[-1].message == "Recall from facts is off."
        toggle.callback()
        assert app.switches.disabled == set()


@pytest.mark.asyncio
async def test_structures_switched_off_are_left_out_of_recall(shared: Components) -> None:
    app = make_app(shared, "toggler")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await say(pilot, "My sister Ana lives in Porto.")
        await pilot.press("ctrl+n")
        await settle(pilot)
        await pilot.press("ctrl+t")
        await pilot.pause()
        await pilot.press("space")  # the cursor starts on the first structure: facts
        await pilot.click("#apply")
        await pilot.pause()
        assert app.switches.disabled == {"facts"}
        assert "off: facts" in str(app.query_one("#status", Static).render())
        await say(pilot, "Where does my sister live?")
        stores = {
            line.item.store for line in app.query_one("#recalled", ItemList).entries if line.item
        }
        assert stores == {"turns"}
        # Still written: the facts browser has the new session's facts.
        app.toggle_structure("facts")
        await say(pilot, "Where does Ana live?")
        stores = {
            line.item.store for line in app.query_one("#recalled", ItemList).entries if line.item
        }
        assert "facts" in stores


@pytest.mark.asyncio
async def test_structures_not_configured_say_so(shared: Components) -> None:
    app = make_app(shared, "plain")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        notes = [str(w.render()) for w in app.query(".not-enabled")]
        assert len(notes) == 1 and "--stores all" in notes[0]
        assert not app.query("#tab-memtree")


# -- finding one's way: scrolling, keys, focus, a restart -------------------------------------


@pytest.mark.asyncio
async def test_sending_brings_the_conversation_back_into_view_after_a_jump(
    shared: Components,
) -> None:
    long_reply = "\n\n".join(f"Paragraph {n} of a long answer." for n in range(1, 21))
    model = ScriptedChatModel(["Noted."] * 4 + [long_reply], default="Noted.")
    app = make_app(shared, "scroller", model)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await say(pilot, "My sister Ana lives in Porto.")
        for n in range(3):
            await say(pilot, f"I have {n + 2} cats at home.")
        chat = app.query_one(Conversation)
        first = shared.records.turns("scroller")[0]
        (item,) = [
            line.item
            for line in app.query_one("#facts", ItemList).entries
            if line.item and first.id in line.item.source_turn_ids
        ][:1]
        app.select_item(item, jump=True)  # what choosing it in the panel does
        await pilot.pause()
        assert chat.scroll_y < chat.max_scroll_y  # the chat shows the source turn
        await say(pilot, "Tell me a long story.")
        reply = replies(app)[-1]
        assert reply.source == long_reply
        # The new exchange and the whole streamed reply are in view, the chat at its end.
        assert chat.max_scroll_y > 0 and chat.scroll_y == chat.max_scroll_y
        assert reply.region.bottom <= chat.region.bottom


@pytest.mark.asyncio
async def test_keys_switch_the_panel_tabs_and_the_browsers(shared: Components) -> None:
    app = make_app(shared, "keys", ScriptedChatModel(default="Noted."))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await say(pilot, "I live in Boston.")
        tabs = app.query_one("#memory-tabs", TabbedContent)
        browse = app.query_one("#browse-tabs", TabbedContent)
        await pilot.press("f3")
        assert tabs.active == "tab-changes"
        await pilot.press("f2")
        assert tabs.active == "tab-recalled"
        assert app.focused is app.query_one("#recalled")  # the arrow keys move through it
        await pilot.press("f4")
        assert tabs.active == "tab-browse" and browse.active == "tab-facts"
        await pilot.press("f4")  # on Browse already: the next browser, round and round
        assert browse.active == "tab-structures"
        await pilot.press("f4")
        assert browse.active == "tab-facts"
        assert app.focused is app.query_one("#prompt")  # Browse gives the input back
        shown = {getattr(key, "description", "") for key in app.query("FooterKey")}
        assert {"Quit", "Recalled", "Changes", "Browse"} <= shown


@pytest.mark.asyncio
async def test_every_dialog_gives_focus_back_to_the_message_input(shared: Components) -> None:
    app = make_app(shared, "focus", ScriptedChatModel(default="Noted."))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await say(pilot, "I live in Boston.")
        app.query_one("#memory-tabs", TabbedContent).active = "tab-browse"
        facts = app.query_one("#facts", ItemList)
        prompt = app.query_one("#prompt", HistoryInput)

        async def from_the_panel(*keys: str) -> None:
            """Open a dialog from the facts list, close it, and type."""
            facts.focus()
            facts.highlighted = next(i for i, line in enumerate(facts.entries) if line.item)
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            await settle(pilot)
            assert app.screen is app.screen_stack[0]
            assert app.focused is prompt, f"after {keys}: focus on {app.focused}"
            await pilot.press("o", "k")
            assert prompt.value == "ok"
            prompt.clear()

        await from_the_panel("ctrl+r", "escape")  # an item's history
        await from_the_panel("f8", "n")  # forget? no
        await from_the_panel("ctrl+o", "escape")  # switch user: cancelled
        await from_the_panel("ctrl+t", "escape")  # structures
        await from_the_panel("ctrl+p", "escape")  # the command palette


@pytest.mark.asyncio
async def test_a_restarted_app_shows_the_end_of_the_last_session_as_earlier(
    shared: Components,
) -> None:
    app = make_app(shared, "returning", ScriptedChatModel(default="Noted."))
    said = [f"Note number {n}: the garden needs water." for n in range(1, 6)]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for text in said:
            await say(pilot, text)
    app.end_session()
    # A new session, as ``agentmem chat`` starts after a restart.
    agent = Agent(shared.manager, None, user_id="returning", clock=fixed_clock)
    app = ChatApp(shared, agent, show_timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        earlier = [w for w in app.query(".-earlier") if isinstance(w, UserMessage | Reply)]
        assert [w.source for w in earlier if isinstance(w, UserMessage)] == said[-3:]
        assert len(earlier) == SHOWN_LAST_SESSION_TURNS
        assert all("earlier" in str(w.border_title) for w in earlier if isinstance(w, Reply))
        dividers = [str(d.render()) for d in app.query(Divider)]
        assert any("the end of your last session" in d for d in dividers)
        assert "New session" in dividers[-1]


@pytest.mark.asyncio
async def test_at_80_by_24_the_status_stays_on_its_lines_and_the_footer_fits(
    shared: Components,
) -> None:
    model = ScriptedChatModel(
        default="Noted.", name="a-model-with-a-rather-long-name-served-by-a-remote-endpoint"
    )
    app = make_app(shared, "small", model)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await say(pilot, "My sister Ana lives in Porto and works as a nurse in the city.")
        await pilot.press("ctrl+n")
        await settle(pilot)
        await say(pilot, "Where does my sister live?")
        status = app.query_one("#status", Static)
        assert status.region.height == 2  # one screen line for each status line
        footer = app.query_one(Footer)
        assert footer.region.bottom == 24
        assert footer.max_scroll_x == 0  # every key in the footer is on screen
        # Wrapped recalled items stay indented under their text, right of the rank.
        recalled = app.query_one("#recalled", ItemList)
        rows = [recalled.render_line(y).text for y in range(recalled.size.height)]
        rows = [row for row in rows if row.strip()]
        assert len(rows) > len(recalled.entries)  # some entries wrap
        assert all(row[:4].strip().isdigit() or row.startswith("    ") for row in rows), rows


# -- recall-only answers ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_recall_only_answers_acknowledge_statements_and_skip_earlier_questions(
    shared: Components,
) -> None:
    app = make_app(shared, "asker")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await say(pilot, "My sister Ana lives in Porto.")
        assert replies(app)[-1].source == (
            "[recall only: no chat model configured] Noted; I will remember that."
        )
        await say(pilot, "Where does my sister live and what is my job?")
        for n in range(5):
            await say(pilot, f"My sister likes painting number {n}.")
        await pilot.press("ctrl+n")
        await settle(pilot)
        await say(pilot, "Where does my sister live?")
        answer = replies(app)[-1].source
        listed = [line for line in answer.splitlines() if line.startswith("- (")]
        assert "Ana lives in Porto" in answer
        assert "what is my job" not in answer  # a question is no evidence
        assert 1 <= len(listed) <= RECALL_ONLY_SHOWN


def test_recall_only_answer_tells_questions_from_statements() -> None:
    def turn(text: str, role: str = "user", speaker: str = "Ana") -> MemoryItem:
        return _item("turns", "turn", f"{speaker}: {text}", role=role, speaker=speaker)

    asked = turn("Where does my sister live?")
    told = turn("My sister lives in Porto.")
    bot = turn("Where? Porto, I think.", role="assistant", speaker="assistant")
    answer = recall_only_answer([asked, told, bot], "where does my sister live")
    assert "Where does my sister live?" not in answer
    assert "My sister lives in Porto." in answer and "Porto, I think" in answer
    assert recall_only_answer([asked], "Who is my sister?").endswith(
        "nothing in memory that seems relevant."
    )
    assert "Noted" in recall_only_answer([told], "I have a dog.")
    assert [is_question(t) for t in ("Is it late", "How?", "Will lives here.", "")] == [
        True,
        True,
        False,
        False,
    ]


# -- the browsers' content, from items as the structures store them ----------------------------


def _item(
    store: str, kind: str, text: str, turns: tuple[int, ...] = (1,), **meta: object
) -> MemoryItem:
    return MemoryItem(
        new_item_id(), store, kind, "browsed", text, turns, valid_from=NOON, metadata=meta
    )


def test_browsers_read_trees_triples_memos_and_summary_versions(shared: Components) -> None:
    records = shared.records
    root = _item("memtree", "node", "travel and family", leaf=False, parent=None, depth=1, leaves=2)
    leaf = _item("memtree", "node", "user: I live in Porto", leaf=True, parent=root.id, depth=2)
    orphan = _item("memtree", "node", "user: an orphan", leaf=True, parent="gone", depth=3)
    denver = _item(
        "graph",
        "fact",
        "user lives in Denver",
        subject="user",
        predicate="residence",
        object="Denver",
    )
    ana = _item(
        "graph", "fact", "Ana lives in Porto", subject="Ana", predicate="residence", object="Porto"
    )
    memo = _item(
        "memo", "memo", "Topic: pets. Miso the cat.", topic="pets", summary="Miso the cat."
    )
    old = _item("summary", "summary", "The user lives in Boston.", version=1)
    new = _item("summary", "summary", "The user lives in Denver.", version=2, turn_range=[1, 4])
    records.add_items([root, leaf, orphan, denver, ana, memo, old, new])
    records.invalidate([old.id], "a newer version", at=NOON, superseded_by=new.id)

    context = StoreContext(records, shared.vectors, shared.embedder)
    forest = MemTreeStore(context).outline("browsed")
    labels = [node.label for node in forest]
    assert labels == ["travel and family  (2 memories below)", "user: an orphan"]
    assert [child.item.id for child in forest[0].children if child.item] == [leaf.id]

    facts, connected = GraphStore(context).outline("browsed", focus="denver")
    assert [entry.label for entry in facts.children] == ["user —residence→ Denver"]
    assert [entry.label for entry in connected.children] == [
        "user (1)",
        "Denver (1)",
        "Ana (1)",
        "Porto (1)",
    ]

    (topic,) = MemoStore(context).outline("browsed")
    assert topic.label == "pets  (1)" and topic.children[0].label == "Miso the cat."

    versions = SummaryStore(context).outline("browsed")
    assert [(v.label, v.item.current if v.item else None) for v in versions] == [
        ("v2 (current, turns #1–#4)", True),
        ("v1 (older version)", False),
    ]


def test_recall_switches_read_from_the_chosen_structures_but_write_to_all(
    shared: Components,
) -> None:
    switches = RecallSwitches(shared.manager)
    agent = Agent(shared.manager, None, user_id="filtered", clock=fixed_clock)
    agent.send("My sister Ana lives in Porto.")
    agent.new_session()
    switches.set_disabled(["turns", "unknown"])
    assert switches.disabled == {"turns"} and switches.enabled == ["facts"]
    result = agent.send("Where does my sister live?")
    assert {hit.item.store for hit in result.recall.items} == {"facts"}
    assert {change.item.store for change in result.memory.changes} >= {"turns"}
    switches.set_disabled(switches.names)
    assert agent.send("Where does Ana live?").recall.items == ()
    switches.set_disabled([])
    assert shared.manager.recall_from is None


# -- layout snapshots -----------------------------------------------------------------------


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Components]:
    components = make_components(tmp_path)
    yield components
    components.close()


def test_snapshot_conversation_with_recall(fresh: Components, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app = make_app(fresh, "ana", ScriptedChatModel(["Noted.", "Your sister Ana lives in Porto."]))

    async def run_before(pilot: Pilot[None]) -> None:
        steady_cursor(pilot)
        await settle(pilot)
        await say(pilot, "My sister Ana lives in Porto.")
        await pilot.press("ctrl+n")
        await settle(pilot)
        await say(pilot, "Where does my sister live?")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_changes_and_facts_history(fresh: Components, snap_compare) -> None:  # type: ignore[no-untyped-def]
    app = make_app(fresh, "ana", ScriptedChatModel(default="Noted."))

    async def run_before(pilot: Pilot[None]) -> None:
        steady_cursor(pilot)
        await settle(pilot)
        await say(pilot, "I live in Boston.")
        await say(pilot, "We moved to Denver.")
        app.query_one("#memory-tabs").active = "tab-browse"  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()  # the tab underline slides
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_small_terminal(fresh: Components, snap_compare) -> None:  # type: ignore[no-untyped-def]
    """80×24: the status cut to its two lines, the footer whole, recalled items indented."""
    app = make_app(fresh, "ana", ScriptedChatModel(["Noted.", "Your sister Ana lives in Porto."]))

    async def run_before(pilot: Pilot[None]) -> None:
        steady_cursor(pilot)
        await settle(pilot)
        await say(pilot, "My sister Ana lives in Porto and works as a nurse in the city.")
        await pilot.press("ctrl+n")
        await settle(pilot)
        await say(pilot, "Where does my sister live?")

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
