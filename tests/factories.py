"""factory_boy factories. Objects that carry invariants (workspaces with an owner and credits) are made
through the services, so tests exercise the same path as the product."""

from __future__ import annotations

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
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def make_workspace(*, owner: User, name: str = "Team") -> Actor:
    """Create a workspace owned by ``owner`` through the service; returns the owner's Actor."""
    return workspace_create(user=owner, name=name)


def add_member(*, actor: Actor, user: User, role: Role) -> Actor:
    """Add ``user`` to the actor's workspace with ``role``; returns the new member's Actor."""
    Membership.objects.create(workspace=actor.workspace, user=user, role=role)
    return Actor(user=user, workspace=actor.workspace, role=role)
