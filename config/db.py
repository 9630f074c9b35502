"""Small database helpers shared by the services."""

from __future__ import annotations

from django.db import IntegrityError, models, transaction

from config.errors import InvalidInputError


def save_or_field_error(instance: models.Model, *, message: str, conflict_fields: dict[str, str]) -> None:
    """Save ``instance``; if a unique constraint refuses it (a concurrent duplicate that passed the earlier
    check), raise InvalidInputError with ``conflict_fields`` instead of a 500.
    """
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        raise InvalidInputError(message, fields=conflict_fields) from None
