from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from accounts_app.exceptions import InvalidInputError, NotFoundError
from accounts_app.models import ApiToken, Membership, Role, User, Workspace
from accounts_app.selectors import api_token_list
from accounts_app.services import api_token_authenticate, api_token_create, api_token_revoke, membership_remove


def test_only_the_hash_is_stored(team):
    issued = api_token_create(actor=team, name="ci")
    row = ApiToken.objects.get(pk=issued.token.pk)
    assert issued.raw.startswith("ap_" + row.prefix + "_")
    assert row.token_hash == hashlib.sha256(issued.raw.encode()).hexdigest()
    stored = " ".join(str(v) for v in ApiToken.objects.filter(pk=row.pk).values().first().values())
    assert issued.raw not in stored
    assert issued.raw.split("_", 2)[2] not in stored


def test_authenticate_resolves_user_workspace_and_current_role(team, teammate):
    issued = api_token_create(actor=teammate, name="ci")
    actor = api_token_authenticate(raw_token=issued.raw)
    assert (actor.user, actor.workspace, actor.role, actor.token) == (
        teammate.user,
        team.workspace,
        Role.MEMBER,
        issued.token,
    )
    Membership.objects.filter(user=teammate.user, workspace=team.workspace).update(role=Role.VIEWER)
    assert api_token_authenticate(raw_token=issued.raw).role == Role.VIEWER


@pytest.mark.parametrize("raw", ["", "ap_", "ap_nope_nope", "sk-something", "ap_" + "x" * 300])
def test_unknown_tokens_are_refused(db, raw):
    assert api_token_authenticate(raw_token=raw) is None


def test_revoked_token_is_refused_at_once(team):
    issued = api_token_create(actor=team, name="ci")
    assert api_token_authenticate(raw_token=issued.raw) is not None
    api_token_revoke(actor=team, token_id=issued.token.pk)
    assert api_token_authenticate(raw_token=issued.raw) is None


def test_expired_token_is_refused(team):
    issued = api_token_create(actor=team, name="ci", expires_at=timezone.now() + timedelta(days=1))
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        assert api_token_authenticate(raw_token=issued.raw) is None


def test_token_of_a_removed_member_or_inactive_user_is_refused(team, teammate, viewer):
    removed = api_token_create(actor=teammate, name="ci")
    membership_remove(actor=team, user_id=teammate.user.pk)
    assert api_token_authenticate(raw_token=removed.raw) is None
    inactive = api_token_create(actor=viewer, name="ci")
    User.objects.filter(pk=viewer.user.pk).update(is_active=False)
    assert api_token_authenticate(raw_token=inactive.raw) is None


def test_last_used_is_stamped_at_most_once_a_minute(team, django_assert_num_queries):
    issued = api_token_create(actor=team, name="ci")
    api_token_authenticate(raw_token=issued.raw)
    first = ApiToken.objects.get(pk=issued.token.pk).last_used_at
    assert first is not None
    with django_assert_num_queries(1):  # token, user, workspace and role in one query; no write
        api_token_authenticate(raw_token=issued.raw)
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at == first


def test_creation_rules(team):
    with pytest.raises(InvalidInputError):
        api_token_create(actor=team, name="   ")
    with pytest.raises(InvalidInputError):
        api_token_create(actor=team, name="old", expires_at=timezone.now() - timedelta(seconds=1))


def test_members_manage_their_own_tokens_and_admins_all(team, teammate, viewer, team_admin):
    mine = api_token_create(actor=teammate, name="mine").token
    theirs = api_token_create(actor=viewer, name="theirs").token
    assert list(api_token_list(actor=teammate)) == [mine]
    assert set(api_token_list(actor=team_admin)) == {mine, theirs}
    with pytest.raises(NotFoundError):
        api_token_revoke(actor=teammate, token_id=theirs.pk)
    api_token_revoke(actor=team_admin, token_id=theirs.pk)


def test_outsider_cannot_revoke(team, outsider):
    token = api_token_create(actor=team, name="ci").token
    with pytest.raises(NotFoundError):
        api_token_revoke(actor=outsider, token_id=token.pk)
    token.refresh_from_db()
    assert token.revoked_at is None


@pytest.mark.django_db
def test_issue_token_command_bootstraps_user_workspace_and_token(capsys):
    call_command("issue_token", "ops", "--workspace", "Production", "--role", "viewer")
    raw = capsys.readouterr().out.strip()
    actor = api_token_authenticate(raw_token=raw)
    assert actor.user.username == "ops"
    assert actor.workspace.name == "Production"
    assert actor.role == Role.OWNER  # a new workspace is always owned by its creator
    assert not actor.user.has_usable_password()

    call_command("issue_token", "reader", "--workspace", "Production", "--role", "viewer")
    reader = api_token_authenticate(raw_token=capsys.readouterr().out.strip())
    assert (reader.workspace, reader.role) == (actor.workspace, Role.VIEWER)
    assert Workspace.objects.filter(name="Production").count() == 1

    call_command("issue_token", "ops")
    personal = api_token_authenticate(raw_token=capsys.readouterr().out.strip())
    assert personal.workspace.is_personal
