from __future__ import annotations

import pytest
from django.test import Client

from providers_app.models import Provider
from providers_app.services import provider_create

KEY = "sk-page-0123456789abcdefghijklmnWXYZ"


@pytest.fixture
def provider(team, fake_openai, allow_loopback):
    return provider_create(
        actor=team,
        type="custom",
        name="Fake",
        api_key=KEY,
        base_url=fake_openai.base_url,
        models=["fake-model"],
        extra_headers={"X-Org": "org-secret"},
    )


def test_list_shows_masked_keys_and_the_built_in_model(provider, team, page_client, django_assert_max_num_queries):
    client = page_client(team)
    with django_assert_max_num_queries(6):
        response = client.get("/providers/")
    html = response.content.decode()
    assert "sk-...WXYZ" in html
    assert KEY not in html
    assert "org-secret" not in html
    assert "X-Org" in html
    assert "Bundled local model" in html


def test_empty_state(team, page_client):
    html = page_client(team).get("/providers/").content.decode()
    assert "No providers added" in html
    assert "Bundled local model" in html


def test_add_edit_and_delete(team, page_client, fake_openai, allow_loopback):
    client = page_client(team)
    assert client.get("/providers/add/").status_code == 200
    response = client.post(
        "/providers/add/",
        {
            "type": "custom",
            "name": "Mine",
            "api_key": KEY,
            "base_url": fake_openai.base_url,
            "models": "a, b\nc",
            "extra_headers": "X-One: 1\nX-Two: 2",
        },
    )
    assert response.status_code == 302, response.content.decode()
    provider = Provider.objects.get(name="Mine")
    assert (provider.model_names, provider.extra_headers) == (["a", "b", "c"], {"X-One": "1", "X-Two": "2"})
    edit_page = client.get(f"/providers/{provider.pk}/").content.decode()
    assert KEY not in edit_page
    assert 'value="' + KEY not in edit_page
    client.post(
        f"/providers/{provider.pk}/",
        {"name": "Renamed", "base_url": fake_openai.base_url, "api_key": "", "models": "a", "extra_headers": ""},
    )
    provider.refresh_from_db()
    assert (provider.name, provider.api_key, provider.extra_headers) == ("Renamed", KEY, {"X-One": "1", "X-Two": "2"})
    client.post(f"/providers/{provider.pk}/delete/")
    assert not Provider.objects.filter(pk=provider.pk).exists()


def test_bad_input_is_422_with_messages(team, page_client):
    response = page_client(team).post(
        "/providers/add/", {"type": "custom", "name": "", "base_url": "ftp://x", "extra_headers": "no colon here"}
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "This field is required." in html
    assert "Write each header as" in html
    response = page_client(team).post(
        "/providers/add/", {"type": "custom", "name": "x", "base_url": "http://169.254.169.254/"}
    )
    assert response.status_code == 422
    assert "private or reserved" in response.content.decode()
    assert not Provider.objects.exists()


def test_test_button_over_htmx(provider, team, page_client):
    response = page_client(team).post(f"/providers/{provider.pk}/test/", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert 'class="test-result ok"' in html
    assert "models listed" in html


def test_outsider_gets_404_everywhere(provider, outsider, page_client):
    client = page_client(outsider)
    for method, path in [
        ("get", f"/providers/{provider.pk}/"),
        ("post", f"/providers/{provider.pk}/"),
        ("post", f"/providers/{provider.pk}/test/"),
        ("post", f"/providers/{provider.pk}/delete/"),
    ]:
        assert getattr(client, method)(path, {"name": "x"}).status_code == 404, path
    assert "Fake" not in client.get("/providers/").content.decode()
    assert Provider.objects.get(pk=provider.pk).name == "Fake"


def test_viewer_reads_but_gets_403_on_writes(provider, viewer, page_client):
    client = page_client(viewer)
    html = client.get("/providers/").content.decode()
    assert "Fake" in html
    assert "Add provider" not in html
    for path in [
        "/providers/add/",
        f"/providers/{provider.pk}/",
        f"/providers/{provider.pk}/test/",
        f"/providers/{provider.pk}/delete/",
    ]:
        assert client.post(path, {"type": "custom", "name": "v"}).status_code == 403, path
    assert client.get("/providers/add/").status_code == 403
    assert Provider.objects.count() == 1


def test_admin_masks_keys_and_tests_connections(provider, operator):
    html = operator.get(f"/admin/providers_app/provider/{provider.pk}/change/").content.decode()
    assert KEY not in html
    assert "org-secret" not in html
    assert "sk-...WXYZ" in html
    response = operator.post(
        "/admin/providers_app/provider/", {"action": "test_connection", "_selected_action": [provider.pk]}, follow=True
    )
    assert "models listed" in response.content.decode()
    assert operator.get("/admin/providers_app/provider/").status_code == 200
    assert operator.get("/admin/providers_app/provider/add/").status_code == 403


def test_anonymous_is_sent_to_login(db):
    assert Client().get("/providers/").status_code == 302
