"""factory_boy factories. Objects that carry invariants (workspaces with an owner and credits) are made
through the services, so tests exercise the same path as the product."""

from __future__ import annotations

from typing import Any

import factory

from accounts_app.actor import Actor
from accounts_app.models import Membership, Role, User
from accounts_app.services import workspace_create

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        password = kwargs.pop("password", PASSWORD)
        user = model_class(**kwargs)
        user.set_password(password)
        user.save()
        return user


def make_user(**kwargs: Any) -> User:
    """Create a saved user whose password is PASSWORD unless given."""
    return UserFactory.create(**kwargs)


def make_workspace(*, owner: User, name: str = "Team") -> Actor:
    """Create a workspace owned by ``owner`` through the service; returns the owner's Actor."""
    return workspace_create(user=owner, name=name)


def add_member(*, actor: Actor, user: User, role: Role) -> Actor:
    """Add ``user`` to the actor's workspace with ``role``; returns the new member's Actor."""
    Membership.objects.create(workspace=actor.workspace, user=user, role=role)
    return Actor(user=user, workspace=actor.workspace, role=role)


def make_fake_provider(actor: Actor, base_url: str, *, is_default: bool = True, **extra: Any) -> Any:
    """Return a custom provider on the scripted model server (tests/fakes) at ``base_url``, allowed to reach it
    (127.0.0.1), by default the workspace's default (its connection is tested first)."""
    from django.test import override_settings

    from providers_app.services import provider_create

    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        return provider_create(
            actor=actor,
            type="custom",
            name="Fake",
            api_key="sk-fake-0123456789",
            base_url=base_url,
            models=["fake-model"],
            is_default=is_default,
            **extra,
        )
