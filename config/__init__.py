"""Project configuration: settings, URLs, the root API, Celery, ASGI and WSGI entry points."""

from config.celery import app as celery_app

__all__ = ["celery_app"]
