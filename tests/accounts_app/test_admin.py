from __future__ import annotations

import pytest

from accounts_app.models import ApiToken, CreditAccount, LedgerEntry
from accounts_app.services import api_token_create, credits_reserve, invitation_create
from tests.factories import make_user, make_workspace

CHANGELISTS = [
    "user",
    "workspace",
    "membership",
    "invitation",
    "apitoken",
    "creditaccount",
    "creditreservation",
    "ledgerentry",
]


@pytest.fixture
def populated(team, teammate, viewer):
    for i in range(10):
        actor = make_workspace(owner=make_user(), name=f"ws {i}")
        api_token_create(actor=actor, name=f"token {i}")
        credits_reserve(workspace=actor.workspace, amount=1, purpose=f"run {i}")
        invitation_create(actor=actor, email=f"guest{i}@example.org")
    return team


@pytest.mark.parametrize("model", CHANGELISTS)
def test_changelists_load_without_n_plus_one(operator, populated, model, django_assert_max_num_queries):
    with django_assert_max_num_queries(15):
        response = operator.get(f"/admin/accounts_app/{model}/")
    assert response.status_code == 200


@pytest.mark.parametrize("model", CHANGELISTS)
def test_changelist_search_works(operator, populated, model):
    assert operator.get(f"/admin/accounts_app/{model}/?q=ws").status_code == 200


def test_token_hashes_are_never_shown(operator, team):
    issued = api_token_create(actor=team, name="ci")
    html = operator.get(f"/admin/accounts_app/apitoken/{issued.token.pk}/change/").content.decode()
    assert issued.token.token_hash not in html
    assert issued.raw not in html
    assert issued.token.display_prefix in html
    assert operator.get("/admin/accounts_app/apitoken/add/").status_code == 403


def test_invitation_token_hash_is_not_shown(operator, team):
    invitation = invitation_create(actor=team, email="x@example.org").invitation
    html = operator.get(f"/admin/accounts_app/invitation/{invitation.pk}/change/").content.decode()
    assert invitation.token_hash not in html


def test_ledger_is_read_only(operator, team):
    entry = LedgerEntry.objects.filter(workspace=team.workspace).first()
    assert operator.get("/admin/accounts_app/ledgerentry/add/").status_code == 403
    response = operator.post(f"/admin/accounts_app/ledgerentry/{entry.pk}/change/", {"amount": "999"})
    assert response.status_code == 403
    assert operator.post(f"/admin/accounts_app/ledgerentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403


def test_grant_credits_action_goes_through_the_service(operator, team, outsider):
    selected = [team.workspace.pk, outsider.workspace.pk]
    confirm = operator.post("/admin/accounts_app/workspace/", {"action": "grant_credits", "_selected_action": selected})
    assert confirm.status_code == 200
    assert b"Grant credits" in confirm.content
    done = operator.post(
        "/admin/accounts_app/workspace/",
        {"action": "grant_credits", "_selected_action": selected, "apply": "1", "amount": "25", "memo": "promo"},
    )
    assert done.status_code == 302
    for workspace in (team.workspace, outsider.workspace):
        assert CreditAccount.objects.get(workspace=workspace).balance == 125
        entry = LedgerEntry.objects.filter(workspace=workspace).first()
        assert (entry.kind, entry.memo, entry.actor.username) == ("grant", "promo", "root")


def test_grant_credits_rejects_a_bad_amount(operator, team):
    response = operator.post(
        "/admin/accounts_app/workspace/",
        {"action": "grant_credits", "_selected_action": [team.workspace.pk], "apply": "1", "amount": "-5"},
    )
    assert response.status_code == 200
    assert CreditAccount.objects.get(workspace=team.workspace).balance == 100


def test_revoke_action(operator, team):
    issued = api_token_create(actor=team, name="leaked")
    operator.post("/admin/accounts_app/apitoken/", {"action": "revoke", "_selected_action": [issued.token.pk]})
    assert ApiToken.objects.get(pk=issued.token.pk).revoked_at is not None


def test_non_staff_cannot_reach_the_admin(team, page_client):
    response = page_client(team).get("/admin/accounts_app/workspace/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
