"""Users, workspaces with role-based memberships, invitations, API tokens, and the credits ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

CREDIT_DIGITS = 20
CREDIT_PLACES = 6


def credit_field(**kwargs: Any) -> models.DecimalField:
    """Return a DecimalField sized for credit amounts (micro-credit precision, no float rounding)."""
    return models.DecimalField(max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES, **kwargs)


class User(AbstractUser):
    """A person who signs in. Email is unique (case-insensitive) when set."""

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
            models.UniqueConstraint(Lower("email"), condition=~models.Q(email=""), name="user_email_ci_unique"),
        ]


class Role(models.TextChoices):
    """Workspace roles, from most to least powerful."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"

    @property
    def rank(self) -> int:
        """Return 3 for owner down to 0 for viewer, so roles compare with ``>=``."""
        return {"owner": 3, "admin": 2, "member": 1, "viewer": 0}[self.value]

    def at_least(self, other: Role) -> bool:
        """Return whether this role has every right ``other`` has."""
        return self.rank >= other.rank


class Workspace(models.Model):
    """The tenant: every resource belongs to exactly one workspace."""

    name = models.CharField(max_length=100)
    is_personal = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Bumped by every change to the workspace's agents, handoffs, contexts or providers, by database triggers
    # (agents_app/migrations/0003): cached agent definitions are keyed by it (see agents_app.definitions).
    config_version = models.PositiveBigIntegerField(default=0)
    # Traces older than this are deleted by a periodic task (traces_app.services.traces_delete_expired).
    trace_retention_days = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(3650)]
    )
    # Runs in flight (open credit reservations) and runs started per minute; None: the setting
    # (RUN_CONCURRENCY_LIMIT, RUN_RATE_LIMIT_PER_MINUTE); 0: no limit. Operators set them in the admin.
    run_concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    run_rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)
    members: models.ManyToManyField[User, Membership] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="workspaces"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")

    def __str__(self) -> str:
        return self.name

    def run_limits(self) -> tuple[int, int]:
        """Return (runs in flight, runs started per minute) this workspace may have; 0 is no limit."""
        concurrency = self.run_concurrency_limit
        rate = self.run_rate_limit_per_minute
        return (
            settings.RUN_CONCURRENCY_LIMIT if concurrency is None else concurrency,
            settings.RUN_RATE_LIMIT_PER_MINUTE if rate is None else rate,
        )


class Membership(models.Model):
    """A user's role in a workspace."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)
    # First-run steps this member has done that leave no other trace (e.g. "trace_opened").
    milestones = models.JSONField(default=list, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("workspace", "user"), name="membership_unique_user"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.workspace_id} as {self.role}"

    @property
    def role_enum(self) -> Role:
        return Role(self.role)


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    CANCELLED = "cancelled", "Cancelled"


class Invitation(models.Model):
    """An offer to join a workspace with a role.

    By username: the invitee sees it in the app. By email: it is accepted only through the secret
    link sent to that address, since an unverified account email proves nothing.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="invitations_sent"
    )
    invitee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="invitations_received",
    )
    email = models.EmailField(blank=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=InvitationStatus.choices, default=InvitationStatus.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints: ClassVar = [
            models.CheckConstraint(condition=~models.Q(invitee__isnull=True, email=""), name="invitation_has_target"),
            models.UniqueConstraint(
                fields=("workspace", "invitee"),
                condition=models.Q(status="pending", invitee__isnull=False),
                name="invitation_one_pending_per_user",
            ),
            models.UniqueConstraint(
                "workspace",
                Lower("email"),
                condition=models.Q(status="pending", invitee__isnull=True),
                name="invitation_one_pending_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"Invitation to {self.workspace_id} for {self.invitee_id or self.email}"

    def is_expired(self, *, now: Any = None) -> bool:
        """Return whether the invitation can no longer be accepted because of its age."""
        return (now or timezone.now()) >= self.expires_at


class ApiToken(models.Model):
    """A bearer token acting for one user in one workspace. Only its SHA-256 hash is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix})"

    @property
    def display_prefix(self) -> str:
        """Return the non-secret start of the token, enough to recognise it."""
        return f"{settings.API_TOKEN_PREFIX}{self.prefix}…"

    def is_active(self, *, now: Any = None) -> bool:
        """Return whether the token may authenticate right now."""
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class CreditAccount(models.Model):
    """A workspace's credit balance. The row is the lock every credit movement takes."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, primary_key=True, related_name="credits")
    balance = credit_field(default=Decimal("0"))
    # Kept by the statements that open and close reservations (services.credits): the work in flight, and the
    # reservations opened in the current minute (``rate_minute``, minutes since the epoch). They back the
    # workspace's run limits without a count query.
    open_reservations = models.PositiveIntegerField(default=0)
    rate_minute = models.BigIntegerField(default=0)
    rate_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            # The services never let this happen; the database refuses it as a last line of defence.
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="credit_balance_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.workspace_id}: {self.balance}"


class ReservationStatus(models.TextChoices):
    OPEN = "open", "Open"
    SETTLED = "settled", "Settled"
    REFUNDED = "refunded", "Refunded"


class CreditReservation(models.Model):
    """Credits set aside before a run; settled with the real cost after it, or refunded if it fails."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="credit_reservations")
    amount = credit_field()
    charged = credit_field(null=True, blank=True)
    status = models.CharField(max_length=10, choices=ReservationStatus.choices, default=ReservationStatus.OPEN)
    purpose = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes: ClassVar = [
            models.Index(
                fields=("status", "created_at"), name="reservation_open_age", condition=models.Q(status="open")
            ),
        ]
        constraints: ClassVar = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="reservation_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"Reservation {self.pk} ({self.status})"


class LedgerKind(models.TextChoices):
    GRANT = "grant", "Grant"
    RESERVE = "reserve", "Reserve"
    SETTLE = "settle", "Settle"
    REFUND = "refund", "Refund"


class LedgerEntry(models.Model):
    """One append-only movement of a workspace's balance.

    ``amount`` is the signed change to the balance and ``balance_after`` the balance it left, so the
    ledger alone can rebuild the balance. Rows are never updated (a database trigger refuses it).
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="ledger_entries")
    kind = models.CharField(max_length=10, choices=LedgerKind.choices)
    amount = credit_field()
    balance_after = credit_field()
    reservation = models.ForeignKey(
        CreditReservation, null=True, blank=True, on_delete=models.SET_NULL, related_name="ledger_entries"
    )
    memo = models.CharField(max_length=200, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name_plural = "ledger entries"
        indexes: ClassVar = [models.Index(fields=("workspace", "-created_at", "-id"), name="ledger_ws_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} -> {self.balance_after}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Ledger entries are append-only.")
        super().save(*args, **kwargs)
