"""The workspace configuration counter that keys cached agent definitions."""

from __future__ import annotations

from django.db.models import F

from accounts_app.models import Workspace


def workspace_config_changed(*, workspace_id: int) -> None:
    """Bump the workspace's configuration version; call it inside the transaction that made the change.

    Every process compares the version it cached an agent definition under with the one the request's
    workspace row carries, so the change is seen everywhere from the next request on.
    """
    Workspace.objects.filter(pk=workspace_id).update(config_version=F("config_version") + 1)
