"""Test settings: the real settings plus speed overrides only."""

from config.settings import *  # noqa: F403

# For speed: a cheap hasher, and static files served from the finders without a manifest.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Serve static files straight from the app folders: a fresh clone has no collectstatic output.
SERVESTATIC_AUTOREFRESH = True
# Every uvicorn test server answers the lifespan start-up in this process; collecting and freezing the
# test process's heap each time would only slow the suite (tests/config/test_memory.py covers it).
GC_THRESHOLDS = None
# Never serve a collected copy: `make run` (and the quickstart test) collect into staticfiles/, and a copy
# collected before an edit would shadow the edited file.
STATIC_ROOT = BASE_DIR / "var" / "tests-never-collect-here"  # noqa: F405
