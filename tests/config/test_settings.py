from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_int, env_int_tuple, env_list, env_secret

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("0", False), ("YES", True), ("off", False), ("", True)])
def test_env_bool(monkeypatch, raw, expected):
    monkeypatch.setenv("X_FLAG", raw)
    assert env_bool("X_FLAG", True) is expected


@pytest.mark.parametrize(
    ("helper", "raw"),
    [
        (lambda: env_bool("X_VALUE", False), "maybe"),
        (lambda: env_int("X_VALUE", 1), "ten"),
        (lambda: env_int("X_VALUE", 1, minimum=0), "-1"),
        (lambda: env_int("X_VALUE", 1, maximum=5), "6"),
        (lambda: env_choice("X_VALUE", "a", ("a", "b")), "c"),
        (lambda: env_int_tuple("X_VALUE", (1, 2, 3)), "1,2"),
        (lambda: env_int_tuple("X_VALUE", (1, 2, 3)), "1,2,x"),
        (lambda: env_int_tuple("X_VALUE", (1, 2, 3), minimum=1), "1,0,3"),
    ],
)
def test_bad_values_raise_naming_the_variable(monkeypatch, helper, raw):
    monkeypatch.setenv("X_VALUE", raw)
    with pytest.raises(ImproperlyConfigured, match="X_VALUE"):
        helper()


def test_env_int_tuple(monkeypatch):
    assert env_int_tuple("X_INTS", (7, 8)) == (7, 8)
    monkeypatch.setenv("X_INTS", " 5000, 15 ")
    assert env_int_tuple("X_INTS", (7, 8), minimum=1) == (5000, 15)


def test_env_list_and_secret_file(monkeypatch, tmp_path):
    monkeypatch.setenv("X_LIST", " a, ,b ")
    assert env_list("X_LIST", []) == ["a", "b"]
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env_secret("X_SECRET") == "s3cret"
    monkeypatch.setenv("X_SECRET", "direct")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env_secret("X_SECRET")
    monkeypatch.delenv("X_SECRET")
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env_secret("X_SECRET")


def _run_manage(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _production_env(tmp_path: Path) -> dict[str, str]:
    from django.db import connection

    db = connection.settings_dict
    host = db["HOST"] or ""
    url = f"postgresql://{db['USER']}@{host}:{db['PORT'] or 5432}/{db['NAME']}"
    if host.startswith("/"):
        url = f"postgresql://{db['USER']}@/{db['NAME']}?host={host}"
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "x" * 20 + "Yz9-production-secret-key-with-enough-entropy-0123456789",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "agents.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://agents.example.com",
        "DATABASE_URL": url,
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
        "SECURE_PROXY_SSL_HEADER": "true",
        "VAR_DIR": str(tmp_path),
    }


@pytest.mark.django_db
def test_check_deploy_passes_with_production_values(tmp_path):
    result = _run_manage(_production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_check_deploy_catches_an_insecure_production(tmp_path):
    env = {**_production_env(tmp_path), "SECURE_SSL_REDIRECT": "false", "SECURE_HSTS_SECONDS": "0"}
    result = _run_manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout


def test_a_malformed_setting_stops_start_up(tmp_path):
    result = _run_manage(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "perhaps",
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://x@127.0.0.1/x",
        },
        "check",
    )
    assert result.returncode != 0
    assert "DEBUG='perhaps' is not a boolean" in result.stderr


def test_database_url_must_be_postgres(tmp_path):
    result = _run_manage(
        {"DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path), "DATABASE_URL": "sqlite:///db.sqlite3"},
        "check",
    )
    assert result.returncode != 0
    assert "DATABASE_URL must be a postgres:// URL" in result.stderr


def test_the_reservation_ttl_must_outlast_every_run(tmp_path):
    result = _run_manage(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://x@127.0.0.1/x",
            "RUN_TIMEOUT_SECONDS": "4000",
        },
        "check",
    )
    assert result.returncode != 0
    assert "CREDITS_RESERVATION_TTL_SECONDS must be longer than RUN_TIMEOUT_SECONDS" in result.stderr


def test_periodic_jobs_name_registered_tasks():
    from config.celery import app

    app.loader.import_default_modules()
    names = [job["task"] for job in app.conf.beat_schedule.values()]
    assert "agents_app.tasks.runs_fail_abandoned" in names
    assert all(name in app.tasks for name in names)
