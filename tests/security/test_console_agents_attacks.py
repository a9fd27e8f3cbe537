"""The Agents and Chat pages, attacked by another user: alice, signed in with her own session and form token, tries
to open, poll, continue and delete bob's conversations (with his agent and with the hub's own agent both may use), to
see, change and delete his agent, to make an agent with a tool she may not use, to send without the form token, and
to send a message far over the size the page takes. Each is refused with a message saying why, and bob's things are
as they were."""

from __future__ import annotations

import html
import re
from pathlib import Path

from tests.console.test_agents import USERS, ChatHub, chat_hub  # noqa: F401 (the module's hub fixture)
from tests.security.test_console_attacks import form_token, sign_in


def test_alice_cannot_reach_bobs_agent_or_conversations(chat_hub: ChatHub, tmp_path: Path) -> None:  # noqa: F811
    hub = chat_hub.hub
    chat_hub.llm.script("bob-1", [{"content": "Hello Bob."}])
    chat_hub.llm.script("greeter", [{"content": "Hi Bob, from the greeter."}])
    bob, answer = sign_in(hub, "bob", USERS["bob"][1])
    assert answer.status_code == 303
    csrf = form_token(bob.get("/agents").text)
    made = bob.post("/agents", data={"csrf": csrf, "name": "bobs", "instructions": "Be Bob's.",
                                     "model_use": "llm", "model_id": "bob-1", "max_steps": "3"})
    assert made.status_code == 303 and made.headers["location"] == "/agents/bobs"
    # without JavaScript, sending waits for the answer and goes to the conversation
    sent = bob.post("/chat/bobs", data={"csrf": csrf, "message": "Hi, my secret plan"})
    assert sent.status_code == 303
    his = sent.headers["location"].rsplit("/", 1)[1]
    greeted = bob.post("/chat/greeter", data={"csrf": csrf, "message": "Hello greeter, bob here"})
    assert greeted.status_code == 303
    his_greeting = greeted.headers["location"].rsplit("/", 1)[1]
    assert "Hi Bob, from the greeter." in bob.get(greeted.headers["location"]).text

    alice, answer = sign_in(hub, "alice", USERS["alice"][1])
    assert answer.status_code == 303
    listing = alice.get("/agents")
    assert "bobs" not in listing.text and "greeter" in listing.text
    token = form_token(listing.text)
    # his agent: not there for her, whichever way she asks
    for path in ("/agents/bobs", "/chat/bobs", f"/chat/bobs/{his}", f"/chat/bobs/{his}/steps"):
        page = alice.get(path)
        assert page.status_code == 404 and "bobs" in page.text and "my secret plan" not in page.text, path
    changed = alice.post("/agents/bobs", data={"csrf": token, "instructions": "Be Alice's."})
    assert changed.status_code == 400 and "no agent named 'bobs'" in html.unescape(changed.text)
    deleted = alice.post("/agents/bobs/delete", data={"csrf": token})
    assert deleted.status_code == 400 and "no agent named 'bobs'" in html.unescape(deleted.text)
    ran = alice.post("/chat/bobs", data={"csrf": token, "message": "hello"})
    assert ran.status_code == 400 and "my secret plan" not in ran.text
    # his conversation with the agent they share: neither opened, polled, continued nor deleted
    for path in (f"/chat/greeter/{his_greeting}", f"/chat/greeter/{his_greeting}/steps"):
        page = alice.get(path)
        assert page.status_code == 404 and "bob here" not in page.text, path
    for headers in ({}, {"HX-Request": "true"}):
        went_on = alice.post("/chat/greeter", data={"csrf": token, "message": "continue his",
                                                     "conversation_id": his_greeting}, headers=headers)
        assert f"no conversation {his_greeting!r} of yours" in html.unescape(went_on.text)
        assert "bob here" not in went_on.text
    gone = alice.post(f"/chat/greeter/{his_greeting}/delete", data={"csrf": token})
    assert gone.status_code == 404
    # a tool she may not use, named outright: refused (a pattern would be cut down at each run)
    refused = alice.post("/agents", data={"csrf": token, "name": "spy", "instructions": "Read the audit.",
                                          "model_use": "llm", "tools": "hub__audit"})
    assert refused.status_code == 400
    assert "you may not use the tool 'hub__audit', so an agent of yours may not either" in html.unescape(
        refused.text)
    assert "spy" not in alice.get("/agents").text
    # without the form token, and a message far over the limit
    assert alice.post("/chat/greeter", data={"message": "hi"}).status_code == 403
    huge = alice.post("/chat/greeter", data={"csrf": token, "message": "x" * 200_000})
    assert huge.status_code == 400 and "too long (200000 characters; at most 100000)" in huge.text
    # bob's things are as they were
    assert "Hello Bob." in bob.get(f"/chat/bobs/{his}").text
    page = bob.get(f"/chat/greeter/{his_greeting}").text
    assert "Hi Bob, from the greeter." in page and "continue his" not in page
    assert re.search(r'data-agent="bobs"', bob.get("/agents").text)
