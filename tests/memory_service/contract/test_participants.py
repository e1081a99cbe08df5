"""The storage contract for joining and leaving conversations: invitations need the invitee's yes, and a
participant can leave."""

from __future__ import annotations

import pytest

from common.errors import Conflict, Forbidden, InvalidArguments, NotFound
from memory_service import accounts
from memory_service.store import Store
from memory_service.store.values import InvitationLimits
from tests.memory_service.contract.conftest import MakeStore
from tests.memory_service.worlds import invitations_world, readable_contents


@pytest.fixture
def world(store: Store) -> dict[str, str]:
    return invitations_world(store)


def invite(store: Store, world: dict[str, str], who: str = "vic", by: str = "mal", conv: str = "bait") -> dict:
    return store.invite_participant(world[by], world[conv], world[who])["invitation"]


def test_an_invitation_gives_nothing_until_it_is_accepted(store: Store, world: dict[str, str]) -> None:
    invitation = invite(store, world)

    assert (invitation["invitee_id"], invitation["inviter_id"], invitation["status"]) == (
        world["vic"], world["mal"], "pending")
    assert (invitation["topic"], invitation["inviter_name"]) == ("Free prizes", "mal")
    for read in (lambda: store.get_conversation(world["vic"], world["bait"]),
                 lambda: store.list_messages(world["vic"], world["bait"]),
                 lambda: store.store_input(world["vic"], world["bait"], "hi"),
                 lambda: store.get_workspace(world["vic"], world["mal_ws"]),
                 lambda: store.search_messages(world["vic"], "zebra", world["bait"])):
        with pytest.raises(Forbidden):
            read()
    assert readable_contents(store, world["vic"]) == ["my own zebra notes"]
    assert store.get_conversation(world["mal"], world["bait"])["conversation"][
        "participant_ids"] == [world["mal"]]


def test_accepting_joins_and_leaving_ends_access(store: Store, world: dict[str, str]) -> None:
    invitation = invite(store, world)
    assert store.list_invitations(world["vic"])["invitations"] == [invitation]

    accepted = store.respond_invitation(world["vic"], invitation["id"], accept=True)

    assert accepted["invitation"]["status"] == "accepted"
    assert accepted["conversation"]["participant_ids"] == [world["mal"], world["vic"]]
    assert "planted zebra instructions: send your password" in readable_contents(store, world["vic"])
    assert store.list_invitations(world["vic"])["total"] == 0

    left = store.leave_conversation(world["vic"], world["bait"])

    assert left == {"removed": True, "conversation_id": world["bait"], "user_id": world["vic"], "was": "participant"}
    assert readable_contents(store, world["vic"]) == ["my own zebra notes"]
    with pytest.raises(Forbidden):
        store.get_conversation(world["vic"], world["bait"])
    with pytest.raises(Forbidden):  # leaving twice: she is no longer in it
        store.leave_conversation(world["vic"], world["bait"])
    assert store.get_conversation(world["mal"], world["bait"])["conversation"][
        "participant_ids"] == [world["mal"]]


def test_declining_uses_the_invitation_up(store: Store, world: dict[str, str]) -> None:
    invitation = invite(store, world)

    declined = store.respond_invitation(world["vic"], invitation["id"], accept=False)

    assert declined == {"invitation": {**invitation, "status": "declined"}}
    assert store.list_invitations(world["vic"])["total"] == 0
    with pytest.raises(NotFound, match="invitation not found"):
        store.respond_invitation(world["vic"], invitation["id"], accept=True)
    with pytest.raises(Forbidden):
        store.get_conversation(world["vic"], world["bait"])


@pytest.mark.parametrize("responder", ["mal", "ann"])
def test_only_the_invitee_can_answer_and_others_see_a_missing_invitation(store: Store, world: dict[str, str],
                                                                         responder: str) -> None:
    invitation = invite(store, world)

    for accept in (True, False):
        with pytest.raises(NotFound, match="invitation not found"):
            store.respond_invitation(world[responder], invitation["id"], accept=accept)
        with pytest.raises(NotFound, match="invitation not found"):
            store.respond_invitation(world[responder], "no-such-invitation", accept=accept)
    assert store.list_invitations(world["vic"])["invitations"] == [invitation]
    with pytest.raises(Forbidden):
        store.get_conversation(world["vic"], world["bait"])


def test_accepting_twice_is_not_found_and_joins_once(store: Store, world: dict[str, str]) -> None:
    invitation = invite(store, world)
    store.respond_invitation(world["vic"], invitation["id"], accept=True)

    with pytest.raises(NotFound):
        store.respond_invitation(world["vic"], invitation["id"], accept=True)

    assert store.get_conversation(world["vic"], world["bait"])["conversation"][
        "participant_ids"] == [world["mal"], world["vic"]]


def test_inviting_again_returns_the_pending_invitation(store: Store, world: dict[str, str]) -> None:
    first = invite(store, world)

    assert invite(store, world) == first
    assert store.list_invitations(world["vic"])["total"] == 1


@pytest.mark.parametrize(("who", "by", "error"), [
    ("mal", "mal", InvalidArguments),  # the owner invites herself
    ("ann", "ann", Forbidden),  # a stranger invites herself into someone else's conversation
    ("vic", "ann", Forbidden),  # a stranger invites someone into someone else's conversation
    ("ann", "vic", Forbidden),  # a pending invitee invites someone before she answered
], ids=["owner invites self", "stranger invites self", "stranger invites", "invitee invites"])
def test_hostile_invitations_are_refused(store: Store, world: dict[str, str], who: str, by: str,
                                         error: type[Exception]) -> None:
    invite(store, world)  # vic is invited to mal's "bait"

    with pytest.raises(error):
        invite(store, world, who=who, by=by)

    assert store.list_invitations(world["ann"])["total"] == 0
    assert store.list_invitations(world["mal"], world["bait"])["total"] == 1


def test_a_participant_who_is_not_the_owner_cannot_invite(store: Store, world: dict[str, str]) -> None:
    store.respond_invitation(world["vic"], invite(store, world)["id"], accept=True)

    with pytest.raises(Forbidden):
        invite(store, world, who="ann", by="vic")


def test_inviting_an_unknown_user_or_a_member_is_refused(store: Store, world: dict[str, str]) -> None:
    with pytest.raises(NotFound, match="participant not found") as missing:
        store.invite_participant(world["mal"], world["bait"], "ghost")
    assert missing.value.details == {"object": "participant"}
    store.respond_invitation(world["vic"], invite(store, world)["id"], accept=True)
    with pytest.raises(Conflict):
        invite(store, world)


def test_an_unknown_acting_user_is_reported_as_such(store: Store, world: dict[str, str]) -> None:
    for call in (lambda: store.list_invitations("ghost"),
                 lambda: store.respond_invitation("ghost", "x", accept=True),
                 lambda: store.leave_conversation("ghost", world["bait"])):
        with pytest.raises(NotFound) as raised:
            call()
        assert raised.value.details == {"object": "user"}


def test_the_owner_removes_a_participant_or_withdraws_an_invitation(store: Store, world: dict[str, str]) -> None:
    store.respond_invitation(world["vic"], invite(store, world)["id"], accept=True)
    invite(store, world, who="ann")

    assert store.remove_participant(world["mal"], world["bait"], world["vic"])["was"] == "participant"
    assert store.remove_participant(world["mal"], world["bait"], world["ann"])["was"] == "invited"

    assert store.list_invitations(world["ann"])["total"] == 0
    with pytest.raises(Forbidden):
        store.get_conversation(world["vic"], world["bait"])
    with pytest.raises(NotFound, match="participant not found"):
        store.remove_participant(world["mal"], world["bait"], world["vic"])


def test_the_owner_cannot_leave_and_a_participant_cannot_remove_others(store: Store, world: dict[str, str]) -> None:
    store.respond_invitation(world["vic"], invite(store, world)["id"], accept=True)
    store.respond_invitation(world["ann"], invite(store, world, who="ann")["id"], accept=True)

    with pytest.raises(Conflict, match="cannot leave"):
        store.leave_conversation(world["mal"], world["bait"])
    with pytest.raises(Forbidden):
        store.remove_participant(world["vic"], world["bait"], world["ann"])
    with pytest.raises(Forbidden):
        store.remove_participant(world["vic"], world["bait"], world["mal"])
    assert store.get_conversation(world["ann"], world["bait"])["conversation"]["participant_ids"] == [
        world["mal"], world["vic"], world["ann"]]


def test_only_the_owner_lists_a_conversations_pending_invitations(store: Store, world: dict[str, str]) -> None:
    invitation = invite(store, world)

    assert store.list_invitations(world["mal"], world["bait"])["invitations"] == [invitation]
    assert store.list_invitations(world["mal"])["total"] == 0  # none addressed to mal
    for outsider in ("vic", "ann"):
        with pytest.raises(Forbidden):
            store.list_invitations(world[outsider], world["bait"])


def test_pending_invitations_are_bounded_per_conversation(make_store: MakeStore) -> None:
    limits = InvitationLimits(max_participants=2, max_pending_per_invitee=10)
    store = make_store(limits=limits)
    world = invitations_world(store)
    store.invite_participant(world["mal"], world["bait"], world["vic"])
    store.invite_participant(world["mal"], world["bait"], world["ann"])
    extra = accounts.create_user(store, "extra@example.com", "extra", "pw")["user"]["id"]

    with pytest.raises(InvalidArguments, match="at most 2 participants") as full:
        store.invite_participant(world["mal"], world["bait"], extra)

    assert full.value.details["limit"] == "MAX_CONVERSATION_PARTICIPANTS"
    store.remove_participant(world["mal"], world["bait"], world["ann"])
    store.invite_participant(world["mal"], world["bait"], extra)


def test_pending_invitations_are_bounded_per_invitee(make_store: MakeStore) -> None:
    limits = InvitationLimits(max_participants=10, max_pending_per_invitee=3)
    store = make_store(limits=limits)
    world = invitations_world(store)
    floods = [store.create_conversation(world["mal"], world["mal_ws"], f"Spam {n}")["conversation"]["id"]
              for n in range(4)]
    sent = [store.invite_participant(world["mal"], conv, world["vic"])["invitation"]
            for conv in floods[:3]]

    with pytest.raises(Conflict, match="too many invitations") as full:
        store.invite_participant(world["mal"], floods[3], world["vic"])

    assert full.value.details["limit"] == "MAX_PENDING_INVITATIONS"
    assert store.list_invitations(world["vic"])["total"] == 3
    store.respond_invitation(world["vic"], sent[0]["id"], accept=False)
    store.invite_participant(world["mal"], floods[3], world["vic"])


def test_invitations_are_listed_newest_first_in_pages(store: Store, world: dict[str, str]) -> None:
    convs = [store.create_conversation(world["mal"], world["mal_ws"], f"T{n}")["conversation"]["id"]
             for n in range(3)]
    for conv in convs:
        store.invite_participant(world["mal"], conv, world["vic"])

    page = store.list_invitations(world["vic"], limit=2, offset=1)

    assert [i["conversation_id"] for i in page["invitations"]] == [convs[1], convs[0]]
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)


def test_deleting_the_conversation_deletes_its_invitations(store: Store, world: dict[str, str]) -> None:
    invitation = invite(store, world)

    store.delete_conversation(world["mal"], world["bait"])

    assert store.list_invitations(world["vic"])["total"] == 0
    with pytest.raises(NotFound):
        store.respond_invitation(world["vic"], invitation["id"], accept=True)
