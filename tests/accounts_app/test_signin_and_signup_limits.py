"""No free guessing: sign-ins throttled per account and per address (django-axes), on our page and the admin's;
and sign-up open, by invitation only, or closed (SIGNUP_MODE)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest
from axes.models import AccessAttempt
from django.test import Client, override_settings

from accounts_app.models import Membership, User
from accounts_app.services.workspaces import invitation_create, user_signup
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def sign_in(client: Client, username: str, password: str, path: str = "/accounts/login/"):
    return client.post(path, {"username": username, "password": password})


@override_settings(AXES_FAILURE_LIMIT=3)
def test_an_account_is_locked_after_its_failures_even_with_the_right_password(owner):
    for address in ("10.0.0.1", "10.0.0.2"):  # spread over addresses: the account counts
        assert sign_in(Client(REMOTE_ADDR=address), owner.username, "wrong").status_code == 200
    assert sign_in(Client(REMOTE_ADDR="10.0.0.3"), owner.username, "wrong").status_code == 429  # the limit-th
    refused = sign_in(Client(REMOTE_ADDR="10.0.0.4"), owner.username, PASSWORD)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) == 15 * 60
    assert "Too many failed sign-ins" in refused.content.decode()
    assert "_auth_user_id" not in refused.client.session  # not signed in
    other = make_user(username="other")
    assert sign_in(Client(REMOTE_ADDR="10.0.0.4"), other.username, PASSWORD).status_code == 302  # others still can


@override_settings(AXES_FAILURE_LIMIT=3)
def test_an_address_is_locked_after_its_failures_across_accounts(owner):
    guesser = Client(REMOTE_ADDR="203.0.113.9")
    for name in ("a", "b", "c"):
        sign_in(guesser, name, "guess")
    assert sign_in(guesser, owner.username, PASSWORD).status_code == 429
    assert sign_in(Client(REMOTE_ADDR="203.0.113.10"), owner.username, PASSWORD).status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3)
def test_the_admin_sign_in_is_throttled_too_and_operators_see_and_clear_lockouts(owner, operator):
    client = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(3):
        sign_in(client, "root", "wrong", path="/admin/login/")
    assert sign_in(client, "root", PASSWORD, path="/admin/login/").status_code == 429
    attempts = operator.get("/admin/axes/accessattempt/").content.decode()
    assert "198.51.100.7" in attempts
    AccessAttempt.objects.filter(ip_address="198.51.100.7").delete()  # what the admin's delete action does
    assert sign_in(client, "root", PASSWORD, path="/admin/login/").status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3)
def test_a_success_clears_the_account_s_failures(owner):
    client = Client(REMOTE_ADDR="10.1.1.1")
    sign_in(client, owner.username, "wrong")
    sign_in(client, owner.username, "wrong")
    assert sign_in(client, owner.username, PASSWORD).status_code == 302
    for _ in range(2):
        sign_in(Client(REMOTE_ADDR="10.1.1.1"), owner.username, "wrong")
    assert sign_in(Client(REMOTE_ADDR="10.1.1.1"), owner.username, PASSWORD).status_code == 302


def test_token_api_calls_do_not_go_through_the_sign_in_lockout(team, api_client):
    assert api_client(team).get("/api/v1/me").status_code == 200


SIGNUP = {"username": "newbie", "email": "newbie@example.com", "password1": PASSWORD, "password2": PASSWORD}


@override_settings(SIGNUP_MODE="closed")
def test_closed_sign_up_refuses_everyone_but_operators():
    page = Client().get("/accounts/signup/")
    assert page.status_code == 403
    assert "Sign-up is closed" in page.content.decode()
    assert Client().post("/accounts/signup/", SIGNUP).status_code == 403
    assert "Ask an operator for an account" in Client().get("/accounts/login/").content.decode()
    assert not User.objects.filter(username="newbie").exists()
    user_signup(username="made", email="made@example.com", password=PASSWORD, by_operator=True)
    assert User.objects.filter(username="made").exists()


@override_settings(SIGNUP_MODE="invitation")
def test_invitation_only_sign_up_needs_a_pending_invitation_s_link(team):
    assert Client().post("/accounts/signup/", SIGNUP).status_code == 403
    created = invitation_create(actor=team, email="newbie@example.com")
    link = urlsplit(created.accept_url).path
    client = Client()
    login_page = client.get(link, follow=True).content.decode()  # the link asks an anonymous visitor to sign in
    assert f"/accounts/signup/?next={quote(link)}" in login_page
    response = client.post(f"/accounts/signup/?next={quote(link)}", SIGNUP)
    assert response.status_code == 302
    assert response["Location"] == link  # back to the invitation, to join
    client.post(link)
    assert Membership.objects.filter(user__username="newbie", workspace=team.workspace).exists()
    bogus = f"/accounts/signup/?next={quote('/accounts/invitations/not-a-token/')}"
    assert Client().post(bogus, {**SIGNUP, "username": "other", "email": "o@example.com"}).status_code == 403
    assert not User.objects.filter(username="other").exists()


def test_open_sign_up_ignores_an_unsafe_next():
    response = Client().post("/accounts/signup/?next=https://evil.example/", SIGNUP)
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.django_db(transaction=True)
@override_settings(AXES_FAILURE_LIMIT=2)
def test_the_lockout_answer_under_asgi(owner):
    """The server runs Django under ASGI, where AxesMiddleware takes its async path (config.middleware)."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    async def go():
        client = AsyncClient()
        first = await client.post("/accounts/login/", {"username": owner.username, "password": "wrong"})
        second = await client.post("/accounts/login/", {"username": owner.username, "password": "wrong"})
        return first, second

    first, second = async_to_sync(go)()
    assert first.status_code == 200
    assert second.status_code == 429
    assert "Too many failed sign-ins" in second.content.decode()
    assert second["Retry-After"] == str(15 * 60)


@override_settings(SIGNUP_MODE="invitation", AXES_FAILURE_LIMIT=7, RUN_RATE_LIMIT_PER_MINUTE=120)
def test_operators_see_the_limits_in_force_on_the_admin_index(operator):
    page = operator.get("/admin/").content.decode()
    assert "Limits in force" in page
    assert "<td>invitation</td>" in page
    assert "7 failures per account or per address" in page
    assert "120 per minute" in page
