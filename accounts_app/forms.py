"""Forms for the account, workspace, token and credit pages. They parse; services decide."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from accounts_app.models import Role
from config.errors import InvalidInputError

_NEW_PASSWORD = {"autocomplete": "new-password"}


class SignupForm(forms.Form):
    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True})
    )
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(
        label="Password again", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=100)


class InvitationForm(forms.Form):
    who = forms.CharField(
        label="Username or email",
        max_length=254,
        help_text="A username gets an in-app invitation; an email gets a link.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “CI pipeline”.")
    expires_in_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        label="Expires after (days)",
        help_text="Leave empty for no expiry.",
    )


class GrantCreditsForm(forms.Form):
    amount = forms.DecimalField(min_value=Decimal("0.000001"), max_digits=20, decimal_places=6)
    memo = forms.CharField(max_length=200, required=False)


def apply_errors(form: forms.Form, exc: InvalidInputError, aliases: dict[str, str] | None = None) -> None:
    """Attach a service's per-field messages to the form (unknown fields become form-wide errors).

    ``aliases`` maps a service field name to the form's, e.g. ``{"password": "password1"}``. A path into a
    field (``tools.0.name``) is reported on that field, saying where.
    """
    for field, message in exc.fields.items():
        field = (aliases or {}).get(field, field)
        head, _, rest = field.partition(".")
        if field not in form.fields and rest and head in form.fields:
            # A path into a JSON field ("tools.0.params.agent_id"): the field, with where in it.
            field, message = head, f"{rest}: {message}"
        form.add_error(field if field in form.fields else None, message)
    if not exc.fields:
        form.add_error(None, exc.message)
