from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts_app.models import ApiToken, Invitation, LedgerEntry, Membership, Role, Workspace
from accounts_app.services import api_token_create, credits_reserve, invitation_create


def post(client: Client, path: str, body: object = None, method: str = "post"):
    return getattr(client, method)(
        path, data=json.dumps(body) if body is not None else None, content_type="application/json"
    )


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


# --- authentication ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_no_credentials_is_401_with_the_error_format():
    response = Client().get("/api/v1/me")
    body = assert_error(response, 401, "not_authenticated")
    assert "Bearer" in body["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_bearer_token_authenticates(team, api_client):
    body = api_client(team).get("/api/v1/me").json()
    assert body["user"]["username"] == "alice"
    assert body["workspace"] == {**body["workspace"], "id": team.workspace.pk, "name": "Team", "role": "owner"}
    assert body["via_token"] is True


def test_revoked_token_is_refused_on_the_next_request(team):
    issued = api_token_create(actor=team, name="ci")
    client = Client(headers={"Authorization": f"Bearer {issued.raw}"})
    assert client.get("/api/v1/me").status_code == 200
    assert post(client, f"/api/v1/tokens/{issued.token.pk}", method="delete").status_code == 204
    assert_error(client.get("/api/v1/me"), 401, "not_authenticated")


def test_session_auth_works_and_requires_csrf_for_writes(team, page_client):
    client = page_client(team)
    assert client.get("/api/v1/me").json()["via_token"] is False
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(team.user)
    assert_error(post(csrf_client, "/api/v1/workspaces", {"name": "X"}), 403, "permission_denied")
    assert not Workspace.objects.filter(name="X").exists()


def test_openapi_docs_are_served(db):
    assert Client().get("/api/v1/docs").status_code == 200
    schema = Client().get("/api/v1/openapi.json").json()
    assert "/api/v1/tokens" in schema["paths"]
    assert list(schema["components"]["securitySchemes"]) == ["bearerAuth"]


# --- bad input -----------------------------------------------------------------------------------
def test_validation_errors_list_the_fields(team, api_client):
    client = api_client(team)
    body = assert_error(post(client, "/api/v1/workspaces", {"name": ""}), 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["name"]
    body = assert_error(post(client, "/api/v1/workspaces", {}), 422, "validation_error")
    assert body["errors"][0]["field"] == "name"
    body = assert_error(post(client, "/api/v1/tokens", {"name": "   "}), 422, "validation_error")
    assert body["errors"][0]["field"] == "name"
    body = assert_error(
        post(client, f"/api/v1/workspaces/{team.workspace.pk}/invitations", {"email": "nope", "role": "king"}),
        422,
        "validation_error",
    )
    assert {e["field"] for e in body["errors"]} == {"email", "role"}


def test_domain_validation_errors_use_the_same_format(team, api_client):
    body = assert_error(
        post(api_client(team), f"/api/v1/workspaces/{team.workspace.pk}/invitations", {"username": "ghost"}),
        422,
        "validation_error",
    )
    assert body["errors"] == [{"field": "username", "message": "No user has this username.", "type": "invalid"}]


def test_malformed_json_is_400(team, api_client):
    response = api_client(team).post("/api/v1/workspaces", data="{not json", content_type="application/json")
    assert_error(response, 400, "bad_request")


def test_wrong_types_in_path_and_query_are_422(team, api_client):
    client = api_client(team)
    assert_error(client.get("/api/v1/workspaces/abc"), 422, "validation_error")
    assert_error(client.get("/api/v1/credits/ledger?kind=bogus"), 422, "validation_error")
    assert_error(client.get("/api/v1/credits/ledger?limit=-5"), 422, "validation_error")


def test_unknown_route_is_404_json(team, api_client):
    assert_error(api_client(team).get("/api/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_json(team, api_client):
    response = post(api_client(team), "/api/v1/me", {}, method="put")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


# --- workspaces, members, invitations -------------------------------------------------------------
def test_workspace_lifecycle(owner, page_client, team):
    client = page_client(team)
    created = post(client, "/api/v1/workspaces", {"name": "  Side project "})
    assert created.status_code == 201
    ws = created.json()
    assert (ws["name"], ws["role"], ws["is_personal"]) == ("Side project", "owner", False)
    names = [w["name"] for w in client.get("/api/v1/workspaces").json()]
    assert "Side project" in names
    assert "Team" in names
    renamed = post(client, f"/api/v1/workspaces/{ws['id']}", {"name": "Renamed"}, method="patch")
    assert renamed.json()["name"] == "Renamed"
    assert post(client, f"/api/v1/workspaces/{ws['id']}", method="delete").status_code == 204
    assert not Workspace.objects.filter(pk=ws["id"]).exists()


def test_a_token_sees_only_its_own_workspace(team, api_client, owner):
    other = post(api_client(team), "/api/v1/workspaces", {"name": "Other"}).json()
    client = api_client(team)
    assert [w["id"] for w in client.get("/api/v1/workspaces").json()] == [team.workspace.pk]
    assert_error(client.get(f"/api/v1/workspaces/{other['id']}"), 404, "not_found")


def test_members_and_roles(team, teammate, api_client):
    client = api_client(team)
    members = client.get(f"/api/v1/workspaces/{team.workspace.pk}/members").json()
    assert {(m["user"]["username"], m["role"]) for m in members} == {("alice", "owner"), ("bob", "member")}
    changed = post(
        client, f"/api/v1/workspaces/{team.workspace.pk}/members/{teammate.user.pk}", {"role": "admin"}, method="patch"
    )
    assert changed.json()["role"] == "admin"
    last_owner = post(
        client, f"/api/v1/workspaces/{team.workspace.pk}/members/{team.user.pk}", {"role": "member"}, method="patch"
    )
    assert_error(last_owner, 409, "last_owner")
    removed = post(client, f"/api/v1/workspaces/{team.workspace.pk}/members/{teammate.user.pk}", method="delete")
    assert removed.status_code == 204


def test_invitation_flow_over_the_api(team, outsider, api_client):
    client = api_client(team)
    by_email = post(client, f"/api/v1/workspaces/{team.workspace.pk}/invitations", {"email": "z@example.org"})
    assert by_email.status_code == 201
    assert by_email.json()["accept_url"].startswith("http")
    by_name = post(
        client, f"/api/v1/workspaces/{team.workspace.pk}/invitations", {"username": "charlie", "role": "viewer"}
    )
    assert by_name.json()["accept_url"] is None
    assert len(client.get(f"/api/v1/workspaces/{team.workspace.pk}/invitations").json()) == 2
    invitee = api_client(outsider)
    mine = invitee.get("/api/v1/me/invitations").json()
    assert [i["workspace_name"] for i in mine] == ["Team"]
    joined = post(invitee, f"/api/v1/me/invitations/{mine[0]['id']}/accept")
    assert joined.json() == {**joined.json(), "id": team.workspace.pk, "role": "viewer"}
    cancelled = post(
        client, f"/api/v1/workspaces/{team.workspace.pk}/invitations/{by_email.json()['id']}", method="delete"
    )
    assert cancelled.status_code == 204


# --- tokens and credits ----------------------------------------------------------------------------
def test_token_create_shows_the_secret_once_and_lists_prefix_only(team, api_client):
    client = api_client(team)
    created = post(client, "/api/v1/tokens", {"name": "deploy"})
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("ap_")
    listed = client.get("/api/v1/tokens").json()
    assert listed["count"] == 2
    assert secret not in json.dumps(listed)
    assert all(t["prefix"].endswith("…") for t in listed["items"])
    assert Client(headers={"Authorization": f"Bearer {secret}"}).get("/api/v1/me").status_code == 200


def test_credits_balance_and_ledger(team, api_client):
    credits_reserve(workspace=team.workspace, amount=30, purpose="run")
    client = api_client(team)
    assert client.get("/api/v1/credits").json() == {"workspace_id": team.workspace.pk, "balance": "70.000000"}
    ledger = client.get("/api/v1/credits/ledger").json()
    assert ledger["count"] == 2
    assert [e["kind"] for e in ledger["items"]] == ["reserve", "grant"]
    assert client.get("/api/v1/credits/ledger?kind=grant").json()["count"] == 1


def test_list_endpoints_do_not_grow_queries_with_rows(team, api_client, django_assert_max_num_queries):
    client = api_client(team)
    for i in range(15):
        credits_reserve(workspace=team.workspace, amount=1, purpose=f"run {i}")
        api_token_create(actor=team, name=f"t{i}")
    for path in ["/api/v1/credits/ledger", "/api/v1/tokens", f"/api/v1/workspaces/{team.workspace.pk}/members"]:
        with django_assert_max_num_queries(6):
            assert client.get(path).status_code == 200


# --- tenancy: outsiders get 404 on everything of another workspace ----------------------------------
@pytest.fixture
def team_objects(team, teammate):
    token = api_token_create(actor=team, name="team-token").token
    invitation = invitation_create(actor=team, email="x@example.org").invitation
    return {"ws": team.workspace.pk, "member": teammate.user.pk, "token": token.pk, "inv": invitation.pk}


OUTSIDER_CALLS = [
    ("get", "/api/v1/workspaces/{ws}", None),
    ("patch", "/api/v1/workspaces/{ws}", {"name": "Pwned"}),
    ("delete", "/api/v1/workspaces/{ws}", None),
    ("get", "/api/v1/workspaces/{ws}/members", None),
    ("patch", "/api/v1/workspaces/{ws}/members/{member}", {"role": "owner"}),
    ("delete", "/api/v1/workspaces/{ws}/members/{member}", None),
    ("get", "/api/v1/workspaces/{ws}/invitations", None),
    ("post", "/api/v1/workspaces/{ws}/invitations", {"username": "charlie", "role": "owner"}),
    ("delete", "/api/v1/workspaces/{ws}/invitations/{inv}", None),
    ("post", "/api/v1/me/invitations/{inv}/accept", None),
    ("post", "/api/v1/me/invitations/{inv}/decline", None),
    ("delete", "/api/v1/tokens/{token}", None),
]


@pytest.mark.parametrize("auth", ["token", "session"])
@pytest.mark.parametrize(("method", "path", "body"), OUTSIDER_CALLS)
def test_outsider_gets_404_and_changes_nothing(
    outsider, team_objects, api_client, page_client, auth, method, path, body
):
    client = api_client(outsider) if auth == "token" else page_client(outsider)
    response = post(client, path.format(**team_objects), body, method=method)
    assert_error(response, 404, "not_found")
    assert Workspace.objects.get(pk=team_objects["ws"]).name == "Team"
    assert Membership.objects.filter(workspace_id=team_objects["ws"]).count() == 2
    assert ApiToken.objects.get(pk=team_objects["token"]).revoked_at is None
    assert Invitation.objects.get(pk=team_objects["inv"]).status == "pending"


def test_outsider_lists_show_nothing_of_the_team(outsider, team_objects, api_client):
    client = api_client(outsider)
    assert "team-token" not in json.dumps(client.get("/api/v1/tokens").json())
    assert client.get("/api/v1/credits").json()["workspace_id"] == outsider.workspace.pk
    assert (
        client.get("/api/v1/credits/ledger").json()["count"]
        == LedgerEntry.objects.filter(workspace=outsider.workspace).count()
    )


VIEWER_WRITES = [
    ("patch", "/api/v1/workspaces/{ws}", {"name": "Mine"}, "permission_denied"),
    ("delete", "/api/v1/workspaces/{ws}", None, "permission_denied"),
    ("patch", "/api/v1/workspaces/{ws}/members/{member}", {"role": "viewer"}, "permission_denied"),
    ("delete", "/api/v1/workspaces/{ws}/members/{member}", None, "permission_denied"),
    ("post", "/api/v1/workspaces/{ws}/invitations", {"username": "charlie"}, "permission_denied"),
    ("delete", "/api/v1/workspaces/{ws}/invitations/{inv}", None, "permission_denied"),
    ("get", "/api/v1/workspaces/{ws}/invitations", None, "permission_denied"),
]


@pytest.mark.parametrize(("method", "path", "body", "code"), VIEWER_WRITES)
def test_viewer_can_read_but_not_write(viewer, team_objects, outsider, api_client, method, path, body, code):
    client = api_client(viewer)
    assert client.get(f"/api/v1/workspaces/{team_objects['ws']}/members").status_code == 200
    assert client.get("/api/v1/credits").status_code == 200
    assert_error(post(client, path.format(**team_objects), body, method=method), 403, code)
    assert Workspace.objects.get(pk=team_objects["ws"]).name == "Team"
    assert Membership.objects.get(workspace_id=team_objects["ws"], user_id=team_objects["member"]).role == Role.MEMBER


def test_viewer_may_still_manage_own_tokens(viewer, api_client):
    client = api_client(viewer)
    assert post(client, "/api/v1/tokens", {"name": "read-only script"}).status_code == 201
