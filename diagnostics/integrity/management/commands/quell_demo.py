"""Demo data for a first look at Quell: a shop database to diagnose, people, and an incident.

Idempotent: run it again and it only fills in what is missing (and points the demo target at
the server again, whose port changes when scripts/run starts an embedded PostgreSQL).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from psycopg import sql

from diagnostics import services as diagnostics_services
from diagnostics.models import Environment, TargetDatabase
from incidents import services as incident_services
from incidents.groups import ensure_groups
from incidents.models import Incident, Kind, ResponderRole

SHOP_SQL = Path(__file__).resolve().parents[3] / "demo" / "shop.sql"
SHOP_DATABASE = "quell_demo_shop"
TARGET_NAME = "Demo shop"
INCIDENT_TITLE = "Demo: checkout pages slow on the shop database"
DEMO_USERS = (
    # username, group, first name, last name
    ("demo-viewer", "viewer", "Vera", "Viewer"),
    ("demo-responder", "responder", "Ravi", "Responder"),
    ("demo-commander", "commander", "Carmen", "Commander"),
)
TIMELINE_NOTES = (
    "Checkout p95 latency is up from 300 ms to 4 s since 14:05; the order history query "
    'on "Order" shows up at the top of the slow query list.',
    'Suspect the missing index on "Order"."createdAt" after this morning\'s deploy; '
    "checking recent schema migrations before touching anything.",
)


def server_conninfo(dbname: str) -> dict[str, str]:
    """Connection settings of Quell's own PostgreSQL server, for database `dbname`."""
    db = settings.DATABASES["default"]
    info = {
        "host": db.get("HOST") or "",
        "port": str(db.get("PORT") or ""),
        "user": db.get("USER") or "",
        "password": db.get("PASSWORD") or "",
        "dbname": dbname,
        "connect_timeout": "5",
    }
    sslmode = (db.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        info["sslmode"] = sslmode
    return {key: value for key, value in info.items() if value}


class Command(BaseCommand):
    help = (
        "Create demo data: the demo shop database (a target to diagnose), demo users in each "
        "group and a demo incident. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--shop-database",
            default=SHOP_DATABASE,
            help=f"name of the demo shop database on Quell's server (default {SHOP_DATABASE})",
        )
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="set the demo users' password again (QUELL_DEMO_PASSWORD or a generated one)",
        )

    def handle(self, *args, shop_database: str, reset_passwords: bool, **options):
        self.load_shop(shop_database)
        target = self.register_target(shop_database)
        self.create_integrity_checks(target)
        users = self.create_users(reset=reset_passwords)
        self.create_incident(target, users)

    def create_integrity_checks(self, target: TargetDatabase) -> None:
        """The playbook's checks for the shop, proposed from its catalog (foreign keys, unique
        indexes, record counts, admins, published posts); ones already defined are kept."""
        from diagnostics.integrity.compiler import IntegrityCheckError
        from diagnostics.integrity.suggest import apply_suggestions

        try:
            created = apply_suggestions(target)
        except IntegrityCheckError as exc:
            self.stderr.write(f"Integrity checks not created: {exc}")
            return
        if created:
            self.stdout.write(f"Defined {len(created)} integrity checks on {TARGET_NAME!r}.")

    # --- the shop database ----------------------------------------------------------------

    def load_shop(self, name: str) -> None:
        """Create the shop database on Quell's server (when missing) and load its schema."""
        own = settings.DATABASES["default"]["NAME"]
        try:
            with psycopg.connect(**server_conninfo(own), autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    self.stdout.write(f"Created database {name}.")
            with psycopg.connect(**server_conninfo(name)) as conn:
                conn.execute(SHOP_SQL.read_text())
        except psycopg.Error as exc:
            raise CommandError(f"Could not load the demo shop into {name}: {exc}") from exc
        self.stdout.write(f"Demo shop schema loaded in {name}.")

    def register_target(self, database: str) -> TargetDatabase:
        """Register (or re-point) the shop as a diagnostics target."""
        info = server_conninfo(database)
        wanted = {
            # A Unix-socket setup has no host; "localhost" reaches the same server over TCP.
            "host": info.get("host") or "localhost",
            "port": int(info.get("port") or 5432),
            "database": database,
            "user": info.get("user") or "postgres",
        }
        target = TargetDatabase.objects.filter(name=TARGET_NAME).first()
        if target is None:
            target = diagnostics_services.target_create(
                name=TARGET_NAME,
                environment=Environment.OTHER,
                password=info.get("password", ""),
                sslmode=info.get("sslmode", "prefer"),
                tags=("demo", "shop"),
                # Only demo data lives there: let people try cancel/terminate on it.
                remediation_allowed=True,
                **wanted,
            )
            self.stdout.write(f"Registered target {TARGET_NAME!r} ({target.address}).")
        else:
            changed = {k: v for k, v in wanted.items() if getattr(target, k) != v}
            if changed:
                target = diagnostics_services.target_update(
                    target_id=target.pk, password=info.get("password", ""), **changed
                )
                self.stdout.write(f"Target {TARGET_NAME!r} now points at {target.address}.")
        return target

    # --- people ---------------------------------------------------------------------------

    def create_users(self, *, reset: bool) -> dict:
        """One demo user per group, sharing one password (printed when it is set)."""
        ensure_groups()
        user_model = get_user_model()
        password = os.environ.get("QUELL_DEMO_PASSWORD") or secrets.token_urlsafe(9)
        users, set_now = {}, []
        for username, group_name, first, last in DEMO_USERS:
            user = user_model.objects.filter(username=username).first()
            if user is None:
                user = user_model.objects.create_user(
                    username=username,
                    email=f"{username}@quell.example",
                    first_name=first,
                    last_name=last,
                    password=password,
                )
                set_now.append(username)
            elif reset:
                user.set_password(password)
                user.save(update_fields=["password"])
                set_now.append(username)
            user.groups.add(Group.objects.get(name=group_name))
            users[group_name] = user
        if set_now:
            self.stdout.write(
                f"Demo users {', '.join(set_now)}: password {password}  (shown once; "
                "manage.py quell_demo --reset-passwords sets a new one)"
            )
        else:
            self.stdout.write(
                "Demo users demo-viewer, demo-responder, demo-commander exist (passwords "
                "unchanged; manage.py quell_demo --reset-passwords sets a new one)."
            )
        return users

    # --- the incident ---------------------------------------------------------------------

    def create_incident(self, target: TargetDatabase, users: dict) -> Incident:
        """A SEV2 performance incident on the shop, staffed, with a couple of notes."""
        incident = Incident.objects.filter(title=INCIDENT_TITLE).first()
        if incident is not None:
            self.stdout.write(f"Demo incident #{incident.pk} exists.")
            return incident
        commander, responder = users["commander"], users["responder"]
        with transaction.atomic():
            incident = incident_services.incident_declare(
                title=INCIDENT_TITLE,
                severity="SEV2",
                kind=Kind.PERFORMANCE,
                description=(
                    "Customers report that the checkout and order history pages of the demo "
                    "shop take several seconds to load. Database CPU is high."
                ),
                detected_by="Customer support",
                actor=responder,
                confirmed=True,
                reproducible=True,
                scope='"Order" and "OrderItem" reads (order history, checkout summary)',
                users_affected_percent=30,
                functionality_impacted="Checkout and order history",
                business_impact="Orders are abandoned while pages time out.",
            )
            diagnostics_services.incident_target_add(
                incident_id=incident.pk, target_id=target.pk, actor=responder
            )
            incident_services.role_assign(
                incident_id=incident.pk,
                role=ResponderRole.INCIDENT_COMMANDER,
                user=commander,
                actor=commander,
            )
            incident_services.role_assign(
                incident_id=incident.pk,
                role=ResponderRole.TECHNICAL_LEAD,
                user=responder,
                actor=commander,
            )
            for message in TIMELINE_NOTES:
                incident_services.timeline_append(
                    incident_id=incident.pk, message=message, actor=responder
                )
        self.stdout.write(f"Demo incident #{incident.pk} declared: {INCIDENT_TITLE}.")
        return incident
