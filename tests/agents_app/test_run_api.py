"""``POST /api/v1/agents/{id}/run`` as integrators call it, against both transports: the run hot path (as
deployed) and Django alone (API_HOT_PATH=false), through uvicorn. Every answer, success or failure, must be the
same on both."""

from __future__ import annotations

from decimal import Decimal

import httpx2
import pytest

from accounts_app.models import CreditAccount, Role
from accounts_app.services import api_token_create, api_token_revoke
from agents_app.models import AgentRun, ConversationItem
from agents_app.services import agent_create, context_create, handoff_add
from tests.conftest import streamed_run_events
from tests.factories import add_member, make_user
from tests.fakes import Error, Reply, ToolCall

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(api_server, team):
    """POST a run as ``actor`` (default: the team's owner) with a fresh token; returns the httpx2 response."""

    def post(agent_id: int, body: object, *, actor=None, token: str | None = None, **kwargs) -> httpx2.Response:
        raw = token if token is not None else api_token_create(actor=actor or team, name="run").raw
        headers = {"Authorization": f"Bearer {raw}"} if raw else {}
        return httpx2.post(
            f"{api_server}/api/v1/agents/{agent_id}/run", json=body, headers=headers, timeout=30, **kwargs
        )

    return post


def assert_error(response: httpx2.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["code"], bool(body["detail"])) == (code, True), body
    return body


def test_a_run_returns_output_messages_usage_and_ids(team, api_client, helper, fake_openai, run):
    fake_openai.script(ToolCall("transfer_to_beta"), Reply("Beta answers.", usage=(20, 5)))
    beta = agent_create(actor=team, name="Beta")
    handoff_add(actor=team, agent_id=helper.pk, target_id=beta.pk)
    response = run(helper.pk, {"message": "Hi", "metadata": {"k": 1}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["output"], body["last_agent"]) == ("succeeded", "Beta answers.", "Beta")
    assert body["usage"]["requests"] == 2
    assert body["trace_id"].startswith("trace_")
    assert len(body["messages"]) >= 3
    stored = AgentRun.objects.get(pk=body["run_id"])
    assert (stored.metadata, stored.mode, stored.cost) == ({"k": 1}, "sync", Decimal(body["cost"]))
    detail = api_client(team).get(f"/api/v1/runs/{stored.pk}").json()
    assert detail["new_items"] == body["messages"]
    assert api_client(team).get(f"/api/v1/agents/{helper.pk}/runs").json()["count"] == 1


def test_a_failed_run_is_502_with_the_reason_and_the_run_id(team, helper, fake_openai, run):
    fake_openai.script(Error(401))
    before = CreditAccount.objects.get(workspace=team.workspace).balance
    body = assert_error(run(helper.pk, {"message": "Hi"}), 502, "provider_auth_failed")
    stored = AgentRun.objects.get(pk=body["run_id"])
    assert (stored.status, stored.error_code) == ("failed", "provider_auth_failed")
    assert CreditAccount.objects.get(workspace=team.workspace).balance == before  # refunded


def test_a_run_without_credits_is_402(team, helper, fake_openai, run):
    CreditAccount.objects.filter(workspace=team.workspace).update(balance=0)
    body = assert_error(run(helper.pk, {"message": "Hi"}), 402, "insufficient_credits")
    assert "credits" in body["detail"]
    assert not AgentRun.objects.exists()
    assert fake_openai.requests == []


def test_a_bad_revoked_or_missing_token_is_401_and_runs_nothing(team, helper, fake_openai, run):
    issued = api_token_create(actor=team, name="soon revoked")
    api_token_revoke(actor=team, token_id=issued.token.pk)
    for token in (issued.raw, "ap_unknown", ""):
        response = run(helper.pk, {"message": "Hi"}, token=token)
        assert_error(response, 401, "not_authenticated")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not AgentRun.objects.exists()
    assert fake_openai.requests == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 422, "message"),
        ({"message": ""}, 422, "message"),
        ({"message": "x", "stream": "maybe"}, 422, "stream"),
        ({"message": "x", "context_id": "abc"}, 422, "context_id"),
        ({"message": "x", "stream": True, "background": True}, 422, "background"),
        ("not an object", 422, None),
    ],
)
def test_bad_input_is_a_4xx_that_says_what_is_wrong(team, helper, fake_openai, run, body, status, field):
    payload = assert_error(run(helper.pk, body), status, "validation_error")
    if field is not None:
        assert field in {e["field"] for e in payload["errors"]}
    assert not AgentRun.objects.exists()


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, "bad_request"),
        (b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 422, "validation_error"),
        (b'{"message": "hi", "metadata": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", 422, "validation_error"),
    ],
    ids=["not json", "nested 100,000 deep", "metadata nested 5,000 deep"],
)
def test_a_body_that_is_not_json_or_too_deep_is_a_4xx(team, helper, fake_openai, api_server, content, status, code):
    token = api_token_create(actor=team, name="run").raw
    response = httpx2.post(
        f"{api_server}/api/v1/agents/{helper.pk}/run",
        content=content,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert_error(response, status, code)
    assert not AgentRun.objects.exists()


def test_another_workspaces_agent_context_or_conversation_is_404(team, helper, outsider, fake_openai, run):
    assert_error(run(helper.pk, {"message": "Hi"}, actor=outsider), 404, "not_found")
    fake_openai.script(Reply("First."))
    first = run(helper.pk, {"message": "Hi"}).json()
    theirs = agent_create(actor=outsider, name="Theirs")
    their_context = context_create(actor=outsider, agent_id=theirs.pk, name="c", content={})
    assert_error(run(helper.pk, {"message": "Hi", "context_id": their_context.pk}), 404, "not_found")
    assert_error(
        run(theirs.pk, {"message": "Hi", "conversation_id": first["conversation_id"]}, actor=outsider), 404, "not_found"
    )
    assert_error(run(999_999, {"message": "Hi"}), 404, "not_found")
    assert AgentRun.objects.count() == 1
    assert len(fake_openai.requests_to("/v1/chat/completions")) == 1


def test_a_viewer_cannot_run(team, helper, fake_openai, run):
    viewer = add_member(actor=team, user=make_user(username="victor"), role=Role.VIEWER)
    assert_error(run(helper.pk, {"message": "Hi"}, actor=viewer), 403, "permission_denied")
    assert not AgentRun.objects.exists()


def test_a_conversation_continues_with_its_history(team, helper, fake_openai, run):
    fake_openai.script(Reply("Nice to meet you, Ada."), Reply("Your name is Ada."))
    first = run(helper.pk, {"message": "My name is Ada."}).json()
    second = run(helper.pk, {"message": "What is my name?", "conversation_id": first["conversation_id"]}).json()
    assert (second["conversation_id"], second["output"]) == (first["conversation_id"], "Your name is Ada.")
    messages = fake_openai.requests_to("/v1/chat/completions")[1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert ConversationItem.objects.filter(conversation_id=first["conversation_id"]).count() == 4


def test_a_context_is_given_to_the_model(team, helper, fake_openai, run):
    context_create(actor=team, agent_id=helper.pk, name="default", content={"plan": "gold"})
    other = context_create(actor=team, agent_id=helper.pk, name="other", content={"plan": "free"})
    fake_openai.script(Reply("One."), Reply("Two."))
    assert run(helper.pk, {"message": "Hi"}).status_code == 200
    assert run(helper.pk, {"message": "Hi", "context_id": other.pk}).status_code == 200
    first, second = (r.body["messages"][0]["content"] for r in fake_openai.requests_to("/v1/chat/completions"))
    assert '"plan": "gold"' in first
    assert '"plan": "free"' in second


def test_the_answer_the_done_event_and_the_stored_run_agree(team, api_client, helper, fake_openai, run, api_server):
    fake_openai.script(Reply("Same everywhere.", usage=(30, 7)), Reply("Same everywhere.", usage=(30, 7)))
    answer = run(helper.pk, {"message": "Hi"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    events = streamed_run_events(api_server, helper.pk, api_token_create(actor=team, name="stream").raw)
    (first_name, first), (done_name, done) = events[0], events[-1]
    assert (first_name, done_name) == ("run", "done")
    assert first == {
        "run_id": done["run_id"],
        "conversation_id": done["conversation_id"],
        "agent": "Helper",
        "trace_id": done["trace_id"],
    }
    ids = {"run_id", "trace_id", "conversation_id"}
    comparable = {k: v for k, v in body.items() if k not in ids}
    for message in [*comparable["messages"], *done["messages"]]:
        message["provider_data"].pop("response_id", None)  # the model's own id for each answer
    assert {k: v for k, v in done.items() if k not in ids | {"error", "code"}} == comparable
    assert (done["error"], done["code"]) == (None, None)
    stored = api_client(team).get(f"/api/v1/runs/{body['run_id']}").json()
    assert stored["cost"] == body["cost"] == done["cost"] == "0.044000"  # six places, as the column stores it
    assert stored["usage"] == body["usage"]


def test_a_failed_streamed_run_ends_with_error_then_done(team, helper, fake_openai, api_server):
    fake_openai.script(Error(401))
    events = streamed_run_events(api_server, helper.pk, api_token_create(actor=team, name="stream").raw)
    (error_name, error), (done_name, done) = events[-2], events[-1]
    assert (error_name, done_name) == ("error", "done")
    stored = AgentRun.objects.get(pk=done["run_id"])
    assert error == {"code": "provider_auth_failed", "detail": stored.error}
    assert (done["status"], done["code"], done["error"]) == ("failed", "provider_auth_failed", stored.error)


def test_null_optional_fields_of_the_spec_s_run_input_mean_their_defaults(helper, fake_openai, run):
    fake_openai.script(Reply("Fine."))
    body = {"message": "Hi", "context_id": None, "stream": False, "provider_id": None, "metadata": None}
    response = run(helper.pk, body)  # as a client built from the spec's AgentRunInput sends it
    assert response.status_code == 200, response.text
    assert AgentRun.objects.get(pk=response.json()["run_id"]).metadata == {}
