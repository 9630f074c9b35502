from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts_app.middleware import SESSION_KEY
from accounts_app.models import ApiToken, Invitation, Membership, Role, User, Workspace
from accounts_app.services import api_token_create, credits_reserve, invitation_create


@pytest.mark.django_db
class TestSignupAndLogin:
    def test_signup_creates_account_signs_in_and_lands_on_the_dashboard(self):
        client = Client()
        response = client.post(
            "/accounts/signup/",
            {
                "username": "dana",
                "email": "dana@example.com",
                "password1": "a long passphrase 42",
                "password2": "a long passphrase 42",
            },
            follow=True,
        )
        assert response.redirect_chain[-1][0] == "/"
        assert b"dana&#x27;s workspace" in response.content
        assert b'data-testid="balance">100<' in response.content
        assert User.objects.get(username="dana").memberships.get().role == Role.OWNER

    def test_signup_errors_are_shown_next_to_fields_with_422_free_rerender(self):
        client = Client()
        response = client.post(
            "/accounts/signup/",
            {"username": "dana", "email": "not-an-email", "password1": "short", "password2": "other"},
        )
        assert response.status_code == 200
        html = response.content.decode()
        assert "Enter a valid email address." in html
        assert "The two passwords differ." in html
        assert not User.objects.filter(username="dana").exists()

    def test_weak_password_is_reported_on_the_password_field(self):
        response = Client().post(
            "/accounts/signup/",
            {"username": "dana", "email": "d@example.com", "password1": "12345678", "password2": "12345678"},
        )
        assert re.search(r"This password is (too short|too common|entirely numeric)", response.content.decode())

    def test_login_page_and_anonymous_redirects(self):
        client = Client()
        assert client.get("/accounts/login/").status_code == 200
        for path in ["/", "/agents/", "/usage/", "/settings/", "/settings/tokens/", "/workspaces/"]:
            response = client.get(path)
            assert response.status_code == 302
            assert response["Location"].startswith("/accounts/login/")

    def test_login_and_logout(self):
        User.objects.create_user(username="eve", password="a long passphrase 42")
        client = Client()
        response = client.post("/accounts/login/", {"username": "eve", "password": "a long passphrase 42"})
        assert response.status_code == 302
        # A user made without a workspace (by an operator) gets a personal one on first visit.
        assert client.get("/").status_code == 200
        assert Membership.objects.filter(user__username="eve", workspace__is_personal=True).exists()
        assert client.post("/accounts/logout/").status_code == 302
        assert client.get("/").status_code == 302


SECTIONS = [
    ("/agents/", "No agents yet"),
    ("/workflows/", "No workflows yet"),
    ("/knowledge/", "No knowledge bases yet"),
    ("/providers/", "No providers added"),
    ("/traces/", "No traces yet"),
]


@pytest.mark.parametrize(("path", "empty_text"), SECTIONS)
def test_every_section_has_an_empty_state(team, page_client, path, empty_text):
    response = page_client(team).get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert empty_text in html
    assert 'aria-current="page"' in html


def test_base_layout_has_navigation_switcher_csrf_and_vendored_htmx(team, outsider, page_client):
    response = page_client(team).get("/")
    html = response.content.decode()
    for label in ["Agents", "Workflows", "Knowledge", "Providers", "Traces", "Usage", "Settings"]:
        assert f">{label}</a>" in html
    assert 'hx-headers=\'{"x-csrftoken": "' in html
    assert re.search(r'<script src="/static/django_htmx/htmx-2(\.min)?\.js', html)
    assert "Elsewhere" not in html  # the switcher lists only my workspaces
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in html  # inline scripts would be blocked by the CSP


@pytest.mark.parametrize("signed_in", [True, False])
def test_unknown_pages_render_the_404_page(team, page_client, signed_in):
    client = page_client(team) if signed_in else Client()
    client.raise_request_exception = True
    response = client.get("/favicon.ico")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()


def test_dashboard_shows_workspace_role_and_balance(viewer, page_client):
    html = page_client(viewer).get("/").content.decode()
    assert "<h1>Team</h1>" in html
    assert "Viewers can look at everything but change nothing." in html


def test_usage_page_and_its_htmx_partial(team, page_client, django_assert_max_num_queries):
    for i in range(30):
        credits_reserve(workspace=team.workspace, amount=1, purpose=f"run {i}")
    client = page_client(team)
    with django_assert_max_num_queries(12):
        page = client.get("/usage/")
    assert page.status_code == 200
    assert "Page 1 of 2" in page.content.decode()
    partial = client.get("/usage/?page=2", headers={"HX-Request": "true"})
    html = partial.content.decode()
    assert html.lstrip().startswith('<section id="ledger"')
    assert "<html" not in html
    assert "Starting grant" in html
    filtered = client.get("/usage/?kind=grant").content.decode()
    assert "run 3" not in filtered
    assert "Starting grant" in filtered


def test_usage_empty_state(page_client, db):
    from tests.factories import make_user, make_workspace

    actor = make_workspace(owner=make_user(), name="Empty")
    html = page_client(actor).get("/usage/?kind=refund").content.decode()
    assert "No ledger entries yet" in html


class TestWorkspacePages:
    def test_create_and_switch(self, team, page_client):
        client = page_client(team)
        response = client.post("/workspaces/", {"name": "Second"}, follow=True)
        assert "<h1>Second</h1>" in response.content.decode()
        assert client.post("/workspaces/switch/", {"workspace_id": team.workspace.pk}).status_code == 302
        assert client.session[SESSION_KEY] == team.workspace.pk
        htmx = client.post("/workspaces/switch/", {"workspace_id": team.workspace.pk}, headers={"HX-Request": "true"})
        assert htmx["HX-Redirect"] == "/"

    def test_switching_to_a_workspace_i_am_not_in_is_404(self, team, outsider, page_client):
        client = page_client(outsider)
        assert client.post("/workspaces/switch/", {"workspace_id": team.workspace.pk}).status_code == 404
        assert client.post("/workspaces/switch/", {"workspace_id": "abc"}).status_code == 404
        assert client.session[SESSION_KEY] == outsider.workspace.pk

    def test_blank_name_is_an_error_on_the_form(self, team, page_client):
        response = page_client(team).post("/workspaces/", {"name": ""})
        assert "This field is required." in response.content.decode()

    def test_stale_session_workspace_falls_back_to_personal(self, team, teammate, page_client):
        client = page_client(teammate)
        Membership.objects.filter(user=teammate.user, workspace=team.workspace).delete()
        html = client.get("/").content.decode()
        assert "bob&#x27;s workspace" in html


class TestSettingsPages:
    def test_owner_sees_members_and_invites(self, team, teammate, page_client):
        client = page_client(team)
        html = client.get("/settings/").content.decode()
        assert "bob" in html
        assert "Invite" in html
        response = client.post("/settings/invitations/", {"who": "charlie@example.org", "role": "member"}, follow=True)
        assert "/accounts/invitations/" in response.content.decode()
        assert Invitation.objects.filter(workspace=team.workspace, email="charlie@example.org").exists()

    def test_invite_unknown_username_shows_the_reason(self, team, page_client):
        response = page_client(team).post("/settings/invitations/", {"who": "ghost", "role": "member"})
        assert response.status_code == 422
        assert "No user has this username." in response.content.decode()

    def test_role_change_over_htmx_returns_the_row(self, team, teammate, page_client):
        response = page_client(team).post(
            f"/settings/members/{teammate.user.pk}/role/", {"role": "admin"}, headers={"HX-Request": "true"}
        )
        html = response.content.decode()
        assert html.lstrip().startswith(f'<tr id="member-{teammate.user.pk}"')
        assert Membership.objects.get(user=teammate.user, workspace=team.workspace).role == Role.ADMIN

    def test_bad_role_is_422(self, team, teammate, page_client):
        response = page_client(team).post(f"/settings/members/{teammate.user.pk}/role/", {"role": "king"})
        assert response.status_code == 422

    def test_viewer_writes_are_403_and_change_nothing(self, viewer, teammate, page_client):
        client = page_client(viewer)
        assert "Invite" not in client.get("/settings/").content.decode()
        for path, data in [
            ("/settings/rename/", {"name": "Mine"}),
            (f"/settings/members/{teammate.user.pk}/role/", {"role": "viewer"}),
            (f"/settings/members/{teammate.user.pk}/remove/", {}),
            ("/settings/invitations/", {"who": "someone@example.org", "role": "member"}),
            ("/settings/delete/", {"confirm_name": "Team"}),
        ]:
            response = client.post(path, data)
            assert response.status_code == 403, path
        assert Workspace.objects.get(pk=viewer.workspace.pk).name == "Team"
        assert Membership.objects.get(user=teammate.user, workspace=viewer.workspace).role == Role.MEMBER

    def test_htmx_errors_are_swapped_into_messages(self, viewer, teammate, page_client):
        response = page_client(viewer).post(
            f"/settings/members/{teammate.user.pk}/role/", {"role": "viewer"}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 403
        assert response["HX-Retarget"] == "#messages"
        assert "does not allow you to manage members" in response.content.decode()

    def test_outsider_cannot_reach_team_objects_from_pages(self, team, teammate, outsider, page_client):
        invitation = invitation_create(actor=team, email="x@example.org").invitation
        token = api_token_create(actor=team, name="ci").token
        client = page_client(outsider)
        for path, data in [
            (f"/settings/members/{teammate.user.pk}/role/", {"role": "viewer"}),
            (f"/settings/members/{teammate.user.pk}/remove/", {}),
            (f"/settings/invitations/{invitation.pk}/cancel/", {}),
            (f"/invitations/{invitation.pk}/accept/", {}),
            (f"/settings/tokens/{token.pk}/revoke/", {}),
        ]:
            assert client.post(path, data).status_code == 404, path
        assert client.get("/accounts/invitations/not-a-real-token/").status_code == 404
        invitation.refresh_from_db()
        token.refresh_from_db()
        assert (invitation.status, token.revoked_at) == ("pending", None)
        assert Membership.objects.get(user=teammate.user, workspace=team.workspace).role == Role.MEMBER

    def test_delete_needs_the_name_typed(self, team, page_client):
        client = page_client(team)
        client.post("/settings/delete/", {"confirm_name": "nope"})
        assert Workspace.objects.filter(pk=team.workspace.pk).exists()
        client.post("/settings/delete/", {"confirm_name": "Team"})
        assert not Workspace.objects.filter(pk=team.workspace.pk).exists()

    def test_accept_invitation_by_link(self, team, outsider, page_client):
        url = invitation_create(actor=team, email="c@example.org", role="viewer").accept_url
        path = url.split("//", 1)[1].split("/", 1)[1]
        client = page_client(outsider)
        assert "Join Team" in client.get("/" + path).content.decode()
        client.post("/" + path)
        assert Membership.objects.get(user=outsider.user, workspace=team.workspace).role == Role.VIEWER

    def test_accept_and_decline_in_app(self, team, outsider, page_client):
        first = invitation_create(actor=team, username="charlie").invitation
        client = page_client(outsider)
        assert "Invitations for you" in client.get("/workspaces/").content.decode()
        client.post(f"/invitations/{first.pk}/decline/")
        first.refresh_from_db()
        assert first.status == "declined"
        second = invitation_create(actor=team, username="charlie").invitation
        assert client.post(f"/invitations/{second.pk}/maybe/").status_code == 404
        client.post(f"/invitations/{second.pk}/accept/")
        assert client.session[SESSION_KEY] == team.workspace.pk


class TestTokenPages:
    def test_create_shows_the_secret_once(self, teammate, page_client):
        client = page_client(teammate)
        response = client.post("/settings/tokens/", {"name": "laptop", "expires_in_days": "30"})
        html = response.content.decode()
        secret = re.search(r'value="(ap_[^"]+)"', html).group(1)
        assert response["Cache-Control"] == "no-store"
        assert ApiToken.objects.get(name="laptop").expires_at is not None
        again = client.get("/settings/tokens/").content.decode()
        assert secret not in again
        assert "laptop" in again
        assert Client(headers={"Authorization": f"Bearer {secret}"}).get("/api/v1/me").status_code == 200

    def test_bad_input_is_422_with_field_errors(self, teammate, page_client):
        response = page_client(teammate).post("/settings/tokens/", {"name": "", "expires_in_days": "0"})
        assert response.status_code == 422
        html = response.content.decode()
        assert "This field is required." in html
        assert "greater than or equal to 1" in html

    def test_revoke(self, teammate, page_client):
        issued = api_token_create(actor=teammate, name="ci")
        client = page_client(teammate)
        client.post(f"/settings/tokens/{issued.token.pk}/revoke/")
        assert Client(headers={"Authorization": f"Bearer {issued.raw}"}).get("/api/v1/me").status_code == 401

    def test_empty_state(self, teammate, page_client):
        assert "No API tokens yet" in page_client(teammate).get("/settings/tokens/").content.decode()
