"""``manage.py issue_token <username> [--workspace NAME] [--role ROLE]``: bootstrap API access."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts_app.exceptions import ApplicationError
from accounts_app.models import Role
from accounts_app.services import operator_token_issue


class Command(BaseCommand):
    help = (
        "Create the user and workspace if needed and print a new API token for them. "
        "The token is printed once; only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--workspace", help="Workspace name; default: the user's personal workspace.")
        parser.add_argument(
            "--role",
            default=Role.OWNER.value,
            choices=Role.values,
            help="Role when adding the user to an existing workspace (a new workspace is always owned).",
        )
        parser.add_argument("--name", default="operator", help="A label for the token.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            issued = operator_token_issue(
                username=options["username"],
                workspace_name=options["workspace"],
                role=Role(options["role"]),
                token_name=options["name"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        token = issued.token
        self.stderr.write(
            f"Token {token.display_prefix} for {token.user.username} in workspace "
            f'"{token.workspace.name}" (id {token.workspace_id}).'
        )
        self.stdout.write(issued.raw)
