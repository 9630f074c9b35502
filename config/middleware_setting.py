"""The MIDDLEWARE setting's type. Imported by settings, so it imports nothing of Django's."""

from __future__ import annotations

# The stock middleware that config/middleware.py adapts (same behaviour, fewer thread hops), by dotted path.
ADAPTED_STOCK_MIDDLEWARE = {
    "config.middleware.SecurityMiddleware": "django.middleware.security.SecurityMiddleware",
    "config.middleware.SessionMiddleware": "django.contrib.sessions.middleware.SessionMiddleware",
    "config.middleware.CommonMiddleware": "django.middleware.common.CommonMiddleware",
    "config.middleware.CsrfViewMiddleware": "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.AuthenticationMiddleware": "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.MessageMiddleware": "django.contrib.messages.middleware.MessageMiddleware",
    "config.middleware.XFrameOptionsMiddleware": "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.CSPMiddleware": "csp.middleware.CSPMiddleware",
}


class MiddlewareSetting(list[str]):
    """A list of middleware paths that also "contains" the stock middleware its adapted subclasses replace.

    Django's security checks look for the stock classes by dotted path (``"django.middleware.security.
    SecurityMiddleware" in settings.MIDDLEWARE``) and skip every HSTS, SSL, cookie and CSRF check when they
    are absent; with this, ``check --deploy`` keeps checking all of them (tests/config/test_settings.py).
    """

    def __contains__(self, item: object) -> bool:
        return super().__contains__(item) or any(ADAPTED_STOCK_MIDDLEWARE.get(path) == item for path in self)
