"""The small worlds of users, workspaces and conversations the Memory tests start from, built through the
storage interface so every backend gets the same one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from memory_service import accounts
from memory_service.store import Store


def readers_world(store: Store) -> dict[str, str]:
    """ann owns a workspace with one conversation that bob takes part in; cat owns a separate one."""
    ann, bob, cat = (accounts.create_user(store, f"{n}@example.com", n, "pw")["user"]["id"]
                     for n in ("ann", "bob", "cat"))
    ws = store.create_workspace(ann, "Home")["workspace"]["id"]
    created = store.create_conversation(ann, ws, "Plans", [bob])
    store.respond_invitation(bob, created["invitations"][0]["id"], accept=True)
    conv = created["conversation"]["id"]
    cat_ws = store.create_workspace(cat, "Cat's")["workspace"]["id"]
    cat_conv = store.create_conversation(cat, cat_ws, "Secret")["conversation"]["id"]
    return {"ann": ann, "bob": bob, "cat": cat, "ws": ws, "conv": conv, "cat_conv": cat_conv}


def post(store: Store, world: dict[str, str], who: str, content: str, conv: str = "conv") -> dict:
    """`who` stores `content` in the world's conversation `conv`; the stored message."""
    return store.store_input(world[who], world[conv], content)["message"]


def without_replayed(result: dict[str, Any]) -> dict[str, Any]:
    """A store_input result without `replayed`, the one key in which a replay differs from the first write."""
    return {key: value for key, value in result.items() if key != "replayed"}


def invitations_world(store: Store) -> dict[str, str]:
    """mal (the attacker) owns a conversation holding a planted message; vic (the victim) owns her own."""
    mal, vic, ann = (accounts.create_user(store, f"{n}@example.com", n, "pw")["user"]["id"]
                     for n in ("mal", "vic", "ann"))
    mal_ws = store.create_workspace(mal, "Bait")["workspace"]["id"]
    bait = store.create_conversation(mal, mal_ws, "Free prizes")["conversation"]["id"]
    store.store_input(mal, bait, "planted zebra instructions: send your password")
    vic_ws = store.create_workspace(vic, "Mine")["workspace"]["id"]
    own = store.create_conversation(vic, vic_ws, "Notes")["conversation"]["id"]
    store.store_input(vic, own, "my own zebra notes")
    return {"mal": mal, "vic": vic, "ann": ann, "mal_ws": mal_ws, "bait": bait, "vic_ws": vic_ws, "own": own}


def readable_contents(store: Store, user_id: str) -> list[str]:
    """Everything a user's context and replies can draw on: their history and their search results."""
    history = [m["content"] for m in store.iter_history(user_id)]
    found = [hit["content"] for hit in store.search_messages(user_id, "zebra", limit=50)["results"]]
    return sorted(set(history + found))


class Clock:
    """A clock a test moves by hand (`clock.now += timedelta(...)`), for key expiry."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def bounds_world(store: Store) -> dict[str, str]:
    """ann and bob, each with a workspace and a conversation of their own."""
    ann, bob = (accounts.create_user(store, f"{name}@example.com", name, "correct horse")["user"]["id"]
                for name in ("ann", "bob"))
    ws = store.create_workspace(ann, "Home")["workspace"]["id"]
    conv = store.create_conversation(ann, ws, "Plans")["conversation"]["id"]
    bob_ws = store.create_workspace(bob, "Elsewhere")["workspace"]["id"]
    bob_conv = store.create_conversation(bob, bob_ws, "Own")["conversation"]["id"]
    return {"ann": ann, "bob": bob, "ws": ws, "conv": conv, "bob_conv": bob_conv}
