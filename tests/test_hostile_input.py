"""Bad input on every endpoint gets a 4xx that says what is wrong, in the API's error format: never a 500, never
a silent reset. Each case is one class of input (NUL bytes, lone surrogates, numbers beyond 64 bits, deep
nesting, non-object bodies, unknown fields, oversized bodies), tried on the endpoints that take it."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts_app.services import api_token_create
from agents_app.models import Agent
from agents_app.services import agent_create, context_create

pytestmark = pytest.mark.django_db

INT64_MAX = 2**63 - 1


@pytest.fixture
def client(team) -> Client:
    return Client(headers={"Authorization": f"Bearer {api_token_create(actor=team, name='hostile').raw}"})


@pytest.fixture
def agent(team) -> Agent:
    created = agent_create(actor=team, name="Target", instructions="Be kind.", metadata={"keep": "me"})
    context_create(actor=team, agent_id=created.pk, name="ctx", content={"a": 1})
    return created


def send(client: Client, method: str, path: str, raw: str | bytes | None = None):
    return (
        getattr(client, method)(path, data=raw, content_type="application/json")
        if raw is not None
        else getattr(client, method)(path)
    )


def assert_4xx(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if field is not None:
        assert field in {error["field"] for error in body.get("errors", [])}, body
    return body


def bodies(agent_id: int) -> list[tuple[str, str, str]]:
    """(method, path, a JSON object template with one string field {s}) for endpoints that write strings."""
    return [
        ("post", "/api/v1/agents", '{"name": "%s"}'),
        ("patch", f"/api/v1/agents/{agent_id}", '{"instructions": "%s"}'),
        ("post", f"/api/v1/agents/{agent_id}/contexts", '{"name": "%s"}'),
        ("post", f"/api/v1/agents/{agent_id}/run", '{"message": "%s"}'),
        ("post", f"/api/v1/agents/{agent_id}/run", '{"message": "hi", "metadata": {"k": "%s"}}'),
        ("post", "/api/v1/agents", '{"name": "ok", "metadata": {"%s": 1}}'),
        ("post", "/api/v1/providers", '{"name": "%s", "type": "openai", "api_key": "sk-x"}'),
        ("post", "/api/v1/tokens", '{"name": "%s"}'),
        ("post", "/api/v1/workspaces", '{"name": "%s"}'),
    ]


@pytest.mark.parametrize("bad", ["a\\u0000b", "\\ud800", "x\\udfffy"], ids=["NUL", "high surrogate", "low surrogate"])
def test_nul_bytes_and_lone_surrogates_are_422_everywhere(client, agent, bad):
    before = Agent.objects.count()
    for method, path, template in bodies(agent.pk):
        assert_4xx(send(client, method, path, template % bad), 422, "validation_error")
    assert Agent.objects.count() == before
    agent.refresh_from_db()
    assert (agent.instructions, agent.metadata) == ("Be kind.", {"keep": "me"})


@pytest.mark.parametrize("value", [2**63, 2**64, -(2**63) - 1, 10**30])
def test_numbers_beyond_64_bits_are_422_in_bodies(client, agent, value):
    for method, path, raw in [
        ("post", f"/api/v1/agents/{agent.pk}/handoffs", json.dumps({"target_id": value})),
        ("post", f"/api/v1/agents/{agent.pk}/model", json.dumps({"provider_id": value})),
        ("post", f"/api/v1/agents/{agent.pk}/run", json.dumps({"message": "hi", "context_id": value})),
        ("post", f"/api/v1/agents/{agent.pk}/run", json.dumps({"message": "hi", "conversation_id": value})),
        ("post", "/api/v1/agents", json.dumps({"name": "n", "max_turns": value})),
        ("put", "/api/v1/traces/retention", json.dumps({"retention_days": value})),
    ]:
        assert_4xx(send(client, method, path, raw), 422, "validation_error")


@pytest.mark.parametrize("offset", [str(2**63), str(2**64), "-1", "1e3", "x"])
@pytest.mark.parametrize(
    "path", ["/api/v1/agents", "/api/v1/runs", "/api/v1/tokens", "/api/v1/credits/ledger", "/api/v1/traces"]
)
def test_out_of_range_offsets_are_422(client, path, offset):
    assert_4xx(client.get(f"{path}?offset={offset}"), 422, "validation_error", "offset")


def test_agent_runs_offset_out_of_range_is_422(client, agent):
    assert_4xx(client.get(f"/api/v1/agents/{agent.pk}/runs?offset={2**63}"), 422, "validation_error", "offset")


@pytest.mark.parametrize("object_id", ["0", "-1", str(2**63), str(2**64), str(10**40)])
def test_ids_that_cannot_exist_are_404(client, object_id):
    for path in [
        f"/api/v1/agents/{object_id}",
        f"/api/v1/runs/{object_id}",
        f"/api/v1/providers/{object_id}",
        f"/api/v1/workspaces/{object_id}",
        f"/api/v1/agents/{object_id}/contexts",
    ]:
        assert_4xx(client.get(path), 404, "not_found")
    assert_4xx(send(client, "delete", f"/api/v1/tokens/{object_id}"), 404, "not_found")


def test_nul_in_a_path_or_query_is_a_4xx(client):
    assert client.get("/api/v1/traces/trace_%00abc").status_code in (400, 404)
    assert_4xx(client.get("/api/v1/traces/trace_%00abc"), 400, "bad_request")
    assert_4xx(client.get("/api/v1/agents?search=a%00b"), 422, "validation_error", "search")
    assert_4xx(client.get("/api/v1/runs?status=%00"), 422, "validation_error", "status")


def _nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = {"n": value}
    return value


@pytest.mark.parametrize("depth", [33, 900])
def test_deep_nesting_is_422(client, agent, depth):
    deep = _nested(depth)
    for method, path, body in [
        ("post", "/api/v1/agents", {"name": "deep", "metadata": deep}),
        ("post", "/api/v1/agents", {"name": "deep", "output_type": deep}),
        ("post", f"/api/v1/agents/{agent.pk}/contexts", {"name": "deep", "content": deep}),
        ("post", f"/api/v1/agents/{agent.pk}/run", {"message": "hi", "metadata": deep}),
    ]:
        assert_4xx(send(client, method, path, json.dumps(body)), 422, "validation_error")
    assert not Agent.objects.filter(name="deep").exists()


def test_nesting_within_the_limit_is_accepted(client):
    response = send(client, "post", "/api/v1/agents", json.dumps({"name": "fine", "metadata": _nested(30)}))
    assert response.status_code == 201, response.content
    assert response.json()["metadata"] == _nested(30)


def test_arrays_nested_thousands_deep_are_refused_not_crashed(client, agent):
    raw = '{"message": "hi", "metadata": {"k": ' + "[" * 5000 + "]" * 5000 + "}}"
    assert_4xx(send(client, "post", f"/api/v1/agents/{agent.pk}/run", raw), 422, "validation_error")
    raw = '{"name": "x", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert_4xx(send(client, "post", "/api/v1/agents", raw), 422, "validation_error")


@pytest.mark.parametrize("raw", ["null", "[1, 2, 3]", '"x"', "7", "true"])
def test_a_body_that_is_not_an_object_is_422_and_changes_nothing(client, agent, team, raw):
    from agents_app.services import agent_set_model

    agent_set_model(actor=team, agent_id=agent.pk, provider_id=None, model="kept-model", model_settings={})
    for method, path in [
        ("post", f"/api/v1/agents/{agent.pk}/model"),
        ("patch", f"/api/v1/agents/{agent.pk}"),
        ("post", "/api/v1/agents"),
        ("post", f"/api/v1/agents/{agent.pk}/run"),
    ]:
        assert_4xx(send(client, method, path, raw), 422, "validation_error")
    agent.refresh_from_db()
    assert (agent.model, agent.instructions) == ("kept-model", "Be kind.")


@pytest.mark.parametrize("raw", ['{"name": NaN}', '{"name": "x", "metadata": {"v": Infinity}}', "{", '{"a": 1}}'])
def test_json_that_is_not_json_is_400(client, raw):
    assert_4xx(send(client, "post", "/api/v1/agents", raw), 400, "bad_request")


def test_unknown_fields_are_422_naming_the_field(client, agent):
    body = assert_4xx(
        send(client, "post", "/api/v1/agents", json.dumps({"name": "x", "instructons": "typo"})),
        422,
        "validation_error",
        "instructons",
    )
    assert "instructons" in body["detail"]
    assert_4xx(
        send(client, "patch", f"/api/v1/agents/{agent.pk}", json.dumps({"nmae": "y"})), 422, "validation_error", "nmae"
    )
    assert_4xx(
        send(client, "post", f"/api/v1/agents/{agent.pk}/run", json.dumps({"message": "hi", "strem": True})),
        422,
        "validation_error",
        "strem",
    )
    agent.refresh_from_db()
    assert agent.name == "Target"


def test_an_oversized_body_is_413(client, settings):
    settings.API_MAX_BODY_BYTES = 64 * 1024
    big = json.dumps({"name": "big", "metadata": {"blob": "x" * (65 * 1024)}})
    assert_4xx(send(client, "post", "/api/v1/agents", big), 413, "too_large")
    assert not Agent.objects.filter(name="big").exists()


def test_the_default_body_limit_refuses_megabytes_of_metadata(client):
    big = json.dumps({"name": "big", "metadata": {"blob": "x" * (4 * 1024 * 1024)}})
    assert_4xx(send(client, "post", "/api/v1/agents", big), 413, "too_large")


def test_a_wrong_host_gets_the_api_error_format():
    response = Client(HTTP_HOST="evil.example").get("/api/v1/me")
    assert_4xx(response, 400, "bad_request")
    page = Client(HTTP_HOST="evil.example").get("/accounts/login/")
    assert page.status_code == 400
    assert not page.get("Content-Type", "").startswith("application/json")  # pages keep their HTML answer


@pytest.mark.parametrize(
    ("path", "typo"),
    [("/api/v1/runs", "stauts"), ("/api/v1/traces", "serch"), ("/api/v1/agents", "limt"), ("/api/v1/tokens", "x")],
)
def test_an_unknown_query_parameter_is_422_naming_it(client, path, typo):
    body = assert_4xx(client.get(f"{path}?{typo}=1"), 422, "validation_error", typo)
    assert typo in body["detail"]
    assert client.get(f"{path}?limit=5&offset=0").status_code == 200


def test_an_unknown_query_parameter_is_refused_under_a_path_with_ids_too(client, agent):
    assert_4xx(client.get(f"/api/v1/agents/{agent.pk}/runs?stat=x"), 422, "validation_error", "stat")
    assert_4xx(client.get(f"/api/v1/agents/{agent.pk}/export?fromat=yaml"), 422, "validation_error", "fromat")
    assert client.get(f"/api/v1/agents/{agent.pk}/export?format=yaml").status_code == 200


def _import(client, text: str):
    return send(client, "post", "/api/v1/agents/import", json.dumps({"text": text}))


def test_an_import_with_yaml_aliases_is_refused_before_it_expands(client):
    bomb = "\n".join(
        [
            'a: &a ["x","x","x","x","x","x","x","x","x","x"]',
            "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]",
            "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]",
            "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]",
            "format: agents-platform",
            "version: 1",
            "root: R",
            "agents: [{name: R, metadata: {blob: *d}}]",
        ]
    )
    body = assert_4xx(_import(client, bomb), 422, "validation_error", "document")
    assert "aliases" in json.dumps(body)
    assert not Agent.objects.filter(name="R").exists()


@pytest.mark.parametrize(
    "text",
    [
        "format: agents-platform\nversion: 1\nroot: R\nagents: [{name: R, metadata: {when: !!binary aGk=}}]",
        "format: agents-platform\nversion: 1\nroot: R\nagents: [{name: R, metadata: {1: x}}]",
        'format: agents-platform\nversion: 1\nroot: R\nagents: [{name: "R\\0"}]',
        "format: agents-platform\nversion: 1\nroot: R\nagents: [{name: R, metadata: " + "[" * 40 + "]" * 40 + "}]",
    ],
    ids=["binary", "number key", "NUL", "deep"],
)
def test_an_import_holding_what_json_cannot_is_422(client, text):
    assert_4xx(_import(client, text), 422, "validation_error")
    assert not Agent.objects.filter(name__startswith="R").exists()


def test_an_export_with_emoji_and_dates_imports_back_as_text(client, team):
    created = agent_create(
        actor=team, name="Smile 😀", instructions="Born 2026-12-05 🎉", metadata={"on": "2026-12-05"}
    )
    exported = client.get(f"/api/v1/agents/{created.pk}/export?format=yaml")
    assert exported.status_code == 200
    response = _import(client, exported.content.decode())
    assert response.status_code == 201, response.content
    imported = Agent.objects.get(pk=response.json()["id"])
    assert (imported.instructions, imported.metadata) == ("Born 2026-12-05 🎉", {"on": "2026-12-05"})


@pytest.mark.parametrize(
    "raw", ['{"tier": "a\\u0000b"}', '{"\\ud800": 1}', '{"n": ' + "[" * 40 + "]" * 40 + "}", '{"n": NaN}']
)
def test_a_pages_json_field_refuses_what_the_api_refuses(team, page_client, agent, raw):
    from agents_app.models import AgentContext

    before = AgentContext.objects.count()
    response = page_client(team).post(f"/agents/{agent.pk}/contexts/", {"name": "bad", "content": raw})
    assert response.status_code == 422
    assert AgentContext.objects.count() == before
    response = page_client(team).post(
        f"/agents/{agent.pk}/edit/", {"name": "Target", "max_turns": "10", "output_type": raw}
    )
    assert response.status_code == 422
    agent.refresh_from_db()
    assert agent.output_type is None


@pytest.mark.parametrize("url", ["/traces/trace_%00x/", "/agents/?q=a%00b", "/credits/?kind=%00", "/agents/?%00=1"])
def test_a_page_address_with_a_nul_byte_is_400(team, page_client, url):
    assert page_client(team).get(url).status_code == 400


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+05:00", "0.5", "1700000000", "2026-13-01T00:00:00Z", "yesterday"]
)
def test_a_date_that_postgres_or_iso_8601_cannot_take_is_422(client, value):
    from urllib.parse import quote

    assert_4xx(client.get(f"/api/v1/traces?since={quote(value)}"), 422, "validation_error", "since")
    raw = json.dumps({"name": "t", "expires_at": value})
    assert_4xx(send(client, "post", "/api/v1/tokens", raw), 422, "validation_error", "expires_at")


def test_a_date_with_any_valid_offset_is_read_in_utc(client):
    response = send(
        client, "post", "/api/v1/tokens", json.dumps({"name": "t", "expires_at": "2099-01-01T20:00:00+23:00"})
    )
    assert response.status_code in (200, 201), response.content
    assert response.json()["expires_at"].startswith("2098-12-31T21:00:00")
    assert client.get("/api/v1/traces?since=2026-01-01T00:00:00-15:30").status_code == 200
    assert client.get("/api/v1/traces?since=0388-09-02T01:17:09%2B23:58").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/providers", {"type": "openai", "name": "p", "api_key": "sk-x", "is_default": 0}, "is_default"),
        ("/api/v1/agents", {"name": "a", "max_turns": "10"}, "max_turns"),
        ("/api/v1/agents", {"name": "a", "max_turns": 10.0}, "max_turns"),
        ("/api/v1/agents", {"name": 7}, "name"),
        ("/api/v1/tokens", {"name": "t", "expires_at": 1700000000}, "expires_at"),
    ],
)
def test_a_value_of_another_json_type_is_422_not_converted(client, path, body, field):
    assert_4xx(send(client, "post", path, json.dumps(body)), 422, "validation_error", field)
