"""The chat page (core_app/static/, docs/WEB.md) in a real Chromium, against the three real services.

Replies come from a fake OpenAI-compatible model that writes a word every 50 ms, so a reply visibly streams.
Every test signs up users of its own through the page; the hooks used are the data-testid list of docs/WEB.md.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.system.support.browser import chromium
from tests.system.support.fake_llm import FakeLLM
from tests.system.support.harness import REPO
from tests.system.support.polling import wait_until
from tests.system.support.stack import start_stack

REPLY = "Porto is lovely in spring: walk along the river, take the tram to the sea, and try the custard tarts."
REPLY_TOKENS = [word + " " for word in REPLY.split(" ")[:-1]] + [REPLY.split(" ")[-1]]
PASSWORD = "a long enough password 42"
# docs/web.png is rewritten only when asked (CORTEX_UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
SCREENSHOT = REPO / "docs" / "web.png"
WAIT_MS = 15_000

STORED = "[data-testid=transcript] [data-testid=message][data-message-id]"
STORED_REPLIES = "[data-testid=transcript] [data-testid=message][data-role=assistant][data-message-id]"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as started:  # skips (or fails in CI) before any service is started
        yield started


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM(REPLY_TOKENS, delay=0.05) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(browser, llm, tmp_path_factory):
    started = start_stack(tmp_path_factory.mktemp("web-page"), core_env={
        "LLM_PROVIDER": "openai", "LLM_BASE_URL": llm.base_url, "LLM_API_KEY": "sk-test", "LLM_MODEL": "test"})
    yield started
    started.stop()


@pytest.fixture(scope="module")
def page_url(stack) -> str:
    """The page, as the Core serves it at `/`."""
    root = requests.get(f"{stack.core.url}/", timeout=5)
    assert root.status_code == 200 and root.headers.get("Content-Type", "").startswith("text/html")
    return f"{stack.core.url}/"


@contextmanager
def opened_page(browser, url: str, **context_options: Any) -> Iterator[Page]:
    """A page in a browser context of its own (its own sessionStorage: another user's browser)."""
    context = browser.new_context(viewport={"width": 1000, "height": 700}, **context_options)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(url)
    try:
        yield page
    finally:
        context.close()
    assert not problems, f"errors in the page's JavaScript: {problems}"


def register(page: Page, name: str) -> str:
    """Sign a new user up through the form, with only the hooked fields; the e-mail used."""
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    page.get_by_test_id("email").fill(email)
    page.get_by_test_id("password").fill(PASSWORD)
    page.get_by_test_id("register").click()
    expect(page.get_by_test_id("logout")).to_be_visible(timeout=WAIT_MS)
    return email


def start_conversation(page: Page) -> None:
    """Make a conversation and wait until it is open (in the address) and its stream connected."""
    before = page.url
    page.get_by_test_id("new-conversation").click()
    expect(page).not_to_have_url(before, timeout=WAIT_MS)
    expect(page.get_by_test_id("connection-state")).to_have_text("connected", timeout=WAIT_MS)


def send(page: Page, text: str) -> None:
    box = page.get_by_test_id("message-input")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("", timeout=WAIT_MS)


def wait_replies(page: Page, count: int) -> None:
    expect(page.locator(STORED_REPLIES)).to_have_count(count, timeout=WAIT_MS)


def shown_ids(page: Page) -> list[str]:
    return page.locator(STORED).evaluate_all("items => items.map(item => item.dataset.messageId)")


def token(page: Page) -> str:
    return page.evaluate("JSON.parse(sessionStorage.getItem('cortex.session')).token")


def stored_ids(stack, page: Page) -> list[str]:
    """The ids of the open conversation's messages as the server has them, in order."""
    conversation = page.evaluate("decodeURIComponent(location.hash.split('=')[1])")
    answer = requests.get(f"{stack.core.url}/v1/conversation/{conversation}/messages",
                          headers={"Authorization": f"Bearer {token(page)}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return [message["id"] for message in answer.json()["messages"]]


WATCH_REPLY = """() => {
  window.__replyLengths = [];
  const transcript = document.querySelector("[data-testid=transcript]");
  new MutationObserver(() => {
    const replies = transcript.querySelectorAll("[data-testid=message][data-role=assistant]");
    const last = replies[replies.length - 1];
    if (last && !last.dataset.messageId) window.__replyLengths.push(last.textContent.length);
  }).observe(transcript, {subtree: true, childList: true, characterData: true});
}"""


def test_two_users_each_see_their_own_conversations_and_replies_stream_in(browser, page_url):
    with opened_page(browser, page_url) as ada, opened_page(browser, page_url) as bob:
        register(ada, "ada")
        register(bob, "bob")
        for page, text in ((ada, "Ada plans a trip to Lisbon"), (bob, "Bob keeps bees in Bergen")):
            start_conversation(page)  # a brand-new user: the workspace is made on the way
            page.evaluate(WATCH_REPLY)
            send(page, text)
            expect(page.get_by_test_id("conversation-list")).to_contain_text(text, timeout=WAIT_MS)
            wait_replies(page, 1)
            lengths = page.evaluate("window.__replyLengths")
            assert len(set(lengths)) >= 3 and lengths == sorted(lengths), lengths  # grew in several steps
            expect(page.locator(STORED_REPLIES)).to_contain_text(REPLY)
        expect(ada.get_by_test_id("conversation-list")).not_to_contain_text("Bob keeps bees")
        expect(bob.get_by_test_id("conversation-list")).not_to_contain_text("Ada plans")
        # Shift+Enter is a new line in the message; Enter sends it.
        box = ada.get_by_test_id("message-input")
        box.fill("first line")
        box.press("Shift+Enter")
        box.type("second line")
        box.press("Enter")
        mine = ada.locator("[data-testid=message][data-role=user][data-message-id]")
        expect(mine).to_have_count(2, timeout=WAIT_MS)
        assert mine.nth(1).evaluate("item => item.querySelector('.body').textContent") == "first line\nsecond line"
        # What the other user wrote is not in this user's search either.
        ada.get_by_test_id("search-input").fill("bees")
        ada.get_by_test_id("search-input").press("Enter")
        expect(ada.get_by_test_id("search-results")).to_contain_text("Nothing found", timeout=WAIT_MS)


def test_a_reload_mid_reply_restores_the_history_and_the_live_stream(browser, page_url, stack, llm):
    with opened_page(browser, page_url) as page:
        register(page, "cyd")
        start_conversation(page)
        send(page, "We should visit Porto in spring")
        wait_replies(page, 1)
        llm.hold.clear()  # the next reply stops after its first word until released
        try:
            send(page, "What should we eat there?")
            streaming = page.locator("[data-testid=transcript] [data-role=assistant]:not([data-message-id])")
            expect(streaming).to_contain_text("Porto", timeout=WAIT_MS)
            before = page.url
            page.reload()
            assert page.url == before  # the open conversation is in the address
            expect(page.get_by_test_id("connection-state")).to_have_text("connected", timeout=WAIT_MS)
            expect(page.locator(STORED)).to_have_count(3)  # the history: two messages and the first reply
        finally:
            llm.hold.set()
        wait_replies(page, 2)  # the rest of the reply arrived on the restored stream
        expect(page.locator(STORED_REPLIES).nth(1)).to_contain_text(REPLY)
        assert shown_ids(page) == stored_ids(stack, page)
        expect(page.get_by_test_id("conversation-list")).to_contain_text("We should visit Porto in spring")


WATCH_STATES = """() => {
  const state = document.querySelector("[data-testid=connection-state]");
  window.__states = [state.textContent];
  new MutationObserver(() => window.__states.push(state.textContent))
    .observe(state, {subtree: true, childList: true, characterData: true});
}"""


def test_the_page_reconnects_by_itself_when_the_core_restarts_and_shows_each_message_once(browser, page_url,
                                                                                           stack):
    with opened_page(browser, page_url) as page:
        register(page, "dee")
        start_conversation(page)
        send(page, "Remember the blue door")
        wait_replies(page, 1)
        page.evaluate(WATCH_STATES)
        state = page.get_by_test_id("connection-state")
        stack.core.stop()
        expect(state).to_have_text("reconnecting", timeout=WAIT_MS)
        stack.core.start()
        expect(state).to_have_text("connected", timeout=30_000)
        # Another client of the same user writes too; then the page itself.
        conversation = page.evaluate("decodeURIComponent(location.hash.split('=')[1])")
        elsewhere = requests.post(f"{stack.core.url}/v1/conversation/{conversation}/messages",
                                  json={"content": "Written from my phone"},
                                  headers={"Authorization": f"Bearer {token(page)}"}, timeout=10)
        assert elsewhere.status_code == 202, elsewhere.text
        wait_replies(page, 2)
        send(page, "Which door was it?")
        wait_replies(page, 3)
        ids = shown_ids(page)
        assert len(ids) == len(set(ids)) == 6 and ids == stored_ids(stack, page)
        states = page.evaluate("window.__states")
        assert states[0] == "connected" and states[-1] == "connected" and "reconnecting" in states, states


XSS = ['<img src=x onerror="window.__xss=1">', "[click](javascript:window.__xss=2)"]


def test_markup_and_javascript_links_in_messages_are_inert(browser, page_url, llm):
    llm.tokens = ["Look: ", "<img src=x ", 'onerror="window.__xss=3"> ', "[here](javascript:window.__xss=4)"]
    try:
        with opened_page(browser, page_url) as page:
            register(page, "mal")
            start_conversation(page)
            for payload in XSS:
                send(page, payload)
                expect(page.locator(STORED).last).to_contain_text(payload, timeout=WAIT_MS)
            wait_replies(page, 2)
            expect(page.locator(STORED_REPLIES).last).to_contain_text('<img src=x onerror="window.__xss=3">')
            page.get_by_test_id("search-input").fill("click")
            page.get_by_test_id("search-input").press("Enter")
            expect(page.get_by_test_id("search-results")).to_contain_text(XSS[1], timeout=WAIT_MS)
            page.get_by_text(XSS[1]).first.click()  # plain text: nothing to follow
            bodies = page.locator("[data-testid=message][data-role=user] .body").all_text_contents()
            assert bodies == XSS
            assert page.evaluate("window.__xss") is None
            assert page.locator("img").count() == 0 and page.locator("a").count() == 0
    finally:
        llm.tokens = REPLY_TOKENS


def test_the_stream_url_holds_a_short_lived_ticket_never_the_access_token(browser, page_url):
    with opened_page(browser, page_url) as page:
        urls: list[str] = []
        page.on("request", lambda request: urls.append(request.url))
        register(page, "tia")
        start_conversation(page)
        send(page, "Is my token safe?")
        wait_replies(page, 1)
        with page.expect_request(lambda request: "/messages/stream" in request.url, timeout=WAIT_MS):
            page.reload()  # a second stream, resumed
        jwt = token(page)
        streams = [url for url in urls if "/messages/stream" in url]
        assert len(streams) >= 2 and all("ticket=" in url for url in streams), streams
        assert [url for url in urls if "access_token=" in url or jwt in url] == []


UNLABELLED = """() => [...document.querySelectorAll("button, input, textarea, select")]
  .filter((control) => control.getClientRects().length > 0)
  .filter((control) => {
    const named = control.getAttribute("aria-label") || control.labels?.[0]?.textContent
      || (control.tagName === "BUTTON" && control.textContent);
    return !(named && named.trim());
  })
  .map((control) => control.outerHTML)"""


def test_log_out_and_in_labelled_controls_offline_and_one_column_on_a_narrow_screen(browser, page_url):
    with opened_page(browser, page_url) as page:
        # Without its script the sign-in form cannot leak the password into a URL: POST, no named inputs, and
        # its buttons disabled until the script has wired it.
        assert page.locator("#auth-form").evaluate("form => form.method") == "post"
        assert page.locator("#auth-form [name]").count() == 0
        expect(page.get_by_test_id("login")).to_be_enabled()
        assert page.evaluate(UNLABELLED) == []
        email = register(page, "nia")
        start_conversation(page)
        send(page, "Before logging out")
        wait_replies(page, 1)
        assert page.evaluate(UNLABELLED) == []
        page.get_by_test_id("search-input").fill("nothing to leave behind")
        page.get_by_test_id("logout").click()
        expect(page.get_by_test_id("transcript")).to_be_hidden()
        assert page.evaluate("sessionStorage.length") == 0
        expect(page.get_by_test_id("search-input")).to_have_value("")  # nothing of this user is left
        page.get_by_test_id("email").fill(email)
        page.get_by_test_id("password").fill("not the password")
        page.get_by_test_id("login").click()
        expect(page.get_by_role("alert").filter(has_text="password")).to_be_visible(timeout=WAIT_MS)
        page.get_by_test_id("password").fill(PASSWORD)
        page.get_by_test_id("password").press("Enter")  # Enter logs in
        page.get_by_test_id("conversation-list").get_by_text("Before logging out").click(timeout=WAIT_MS)
        expect(page.locator(STORED)).to_have_count(2, timeout=WAIT_MS)
        state = page.get_by_test_id("connection-state")
        page.context.set_offline(True)
        expect(state).to_have_text("offline", timeout=WAIT_MS)
        page.context.set_offline(False)
        expect(state).to_have_text("connected", timeout=WAIT_MS)
        page.set_viewport_size({"width": 380, "height": 800})
        side = page.get_by_test_id("conversation-list").bounding_box()
        talk = page.get_by_test_id("transcript").bounding_box()
        assert side and talk and talk["y"] >= side["y"] + side["height"] and talk["width"] > 300, (side, talk)
        send(page, "Still usable on a phone")
        wait_replies(page, 2)


def test_search_opens_the_conversation_found_and_the_analyses_are_drawn(browser, page_url, tmp_path):
    with opened_page(browser, page_url) as page:
        register(page, "eve")
        start_conversation(page)
        send(page, "We should visit Porto in spring, I love the old town")
        wait_replies(page, 1)
        send(page, "The trains were slow and the hotel was awful last time")
        wait_replies(page, 2)
        first = page.url
        start_conversation(page)
        assert page.url != first
        page.get_by_test_id("search-input").fill("hotel")
        page.get_by_test_id("search-input").press("Enter")
        results = page.get_by_test_id("search-results")
        expect(results).to_contain_text("the hotel was awful", timeout=WAIT_MS)
        results.get_by_role("button").first.click()
        expect(page).to_have_url(first, timeout=WAIT_MS)
        expect(page.locator(STORED)).to_have_count(4, timeout=WAIT_MS)
        page.get_by_role("button", name="Rename").click()
        page.get_by_label("New topic").fill("Porto, spring")
        page.get_by_label("New topic").press("Enter")
        expect(page.get_by_test_id("conversation-list")).to_contain_text("Porto, spring", timeout=WAIT_MS)
        page.get_by_role("button", name="Analyse").click()
        analysis = page.locator("#analysis")
        expect(analysis.locator("svg.chart.bars rect.bar").first).to_be_visible(timeout=WAIT_MS)  # a bar a day
        expect(analysis.locator("svg.chart.line circle")).to_have_count(4)  # one point per message
        expect(analysis).to_contain_text("Overall")
        shot = SCREENSHOT if os.environ.get("CORTEX_UPDATE_SCREENSHOT") == "1" else tmp_path / "web.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000  # a picture of the page, not an empty frame


def test_reply_errors_and_warnings_show_in_the_transcript_and_a_503_on_reconnect_is_retried(browser, page_url,
                                                                                          stack, llm):
    with opened_page(browser, page_url) as page:
        register(page, "fay")
        start_conversation(page)
        state = page.get_by_test_id("connection-state")
        transcript = page.get_by_test_id("transcript")
        llm.fail_after = 3  # the model's stream is cut after three words
        try:
            send(page, "Tell me about Porto")
            expect(transcript).to_contain_text("The reply failed", timeout=WAIT_MS)
        finally:
            llm.fail_after = None
        expect(transcript).to_contain_text("(provider_error)")
        expect(page.locator(STORED)).to_have_count(1)  # the failed reply is no message
        expect(state).to_have_text("connected")  # an error in the stream is not a connection error
        stack.cognition.stop()
        try:
            send(page, "And about Lisbon?")
            expect(transcript).to_contain_text("(context_unavailable)", timeout=WAIT_MS)
            wait_replies(page, 1)  # written without context
        finally:
            stack.cognition.start()
        stack.memory.stop()
        try:
            page.context.set_offline(True)  # the stream is closed; reopening it needs a ticket, which needs Memory
            expect(state).to_have_text("offline", timeout=WAIT_MS)
            page.context.set_offline(False)
            expect(state).to_have_text("reconnecting", timeout=WAIT_MS)
            page.wait_for_event("response", lambda answer: "stream-ticket" in answer.url and answer.status == 503,
                                timeout=WAIT_MS)
        finally:
            stack.memory.start()
        expect(state).to_have_text("connected", timeout=30_000)
        wait_until(lambda: requests.get(f"{stack.core.url}/health", timeout=2).json()["status"] == "healthy", 15,
                   message="the Core to see every dependency again")


def test_a_bad_address_a_bogus_event_id_and_a_stream_gone_for_good(browser, page_url):
    with opened_page(browser, page_url) as page:
        register(page, "gus")
        start_conversation(page)
        conversation = page.evaluate("decodeURIComponent(location.hash.split('=')[1])")
        state = page.get_by_test_id("connection-state")
        # A last event id the server cannot parse (400, before `connected`) is forgotten after two failures.
        key = f"cortex.last-event.{conversation}"
        page.evaluate("([key]) => sessionStorage.setItem(key, JSON.stringify('bogus'))", [key])
        page.reload()
        expect(state).to_have_text("connected", timeout=WAIT_MS)
        assert page.evaluate("([key]) => sessionStorage.getItem(key)", [key]) != '"bogus"'
        # The ticket refused for good (404): the stream has ended, so the state is offline, not connected.
        page.route("**/stream-ticket", lambda route: route.fulfill(
            status=404, content_type="application/json",
            body='{"error": {"code": "not_found", "message": "Conversation not found."}}'))
        page.reload()
        expect(state).to_have_text("offline", timeout=WAIT_MS)
        expect(page.locator("#banner")).to_contain_text("stopped", timeout=WAIT_MS)
        page.unroute("**/stream-ticket")
        # A malformed address (`%` alone) opens nothing, breaks nothing, and is forgotten.
        page.goto(f"{page_url}#conversation=%")
        page.reload()
        expect(page.get_by_test_id("logout")).to_be_visible(timeout=WAIT_MS)
        expect(state).to_have_text("connected", timeout=WAIT_MS)
        expect(page).to_have_url(page_url, timeout=WAIT_MS)
