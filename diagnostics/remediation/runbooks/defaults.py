"""The playbook's resolution strategies as runbooks (seeded by migration; edit them in the admin).

Each step: (title, detail, action). `action` links the step to something Quell does itself:
run_diagnostics, integrity_verification, remediation_preview.
"""

from __future__ import annotations

DEFAULT_RUNBOOKS = [
    {
        "key": "quick-mitigation",
        "title": "Quick mitigation",
        "description": "Restart the connection pool, kill problematic queries, scale resources "
        "(playbook: Resolution Strategies, Quick Mitigation Strategies).",
        "steps": [
            (
                "Run diagnostics on the affected databases",
                "Connections, long-running queries, locks and blocking chains, slow queries.",
                "run_diagnostics",
            ),
            (
                "Restart the application's database connection pool",
                "Prisma: await prisma.$disconnect(); then reconnect with a simple query "
                "(await prisma.$queryRaw`SELECT 1`). Other pools: recycle the pool or redeploy "
                "the application's instances.",
                "",
            ),
            (
                "Identify long-running queries (over 5 minutes)",
                "SELECT pid, now() - query_start AS duration, query FROM pg_stat_activity\n"
                "WHERE state = 'active' AND now() - query_start > interval '5 minutes'\n"
                "ORDER BY duration DESC;\n"
                "Quell's remediation preview lists them with who runs them.",
                "remediation_preview",
            ),
            (
                "Kill problematic queries: cancel first, terminate what does not stop",
                "SELECT pg_cancel_backend(pid); -- the query\n"
                "SELECT pg_terminate_backend(pid); -- the connection (idle in transaction "
                "sessions need this)\n"
                "Use Quell's remediation (preview, confirm) so every kill is on the timeline.",
                "remediation_preview",
            ),
            (
                "Scale database resources if load remains",
                "Increase the instance size; add read replicas for read-heavy workloads; "
                "adjust the connection pool size.",
                "",
            ),
            (
                "Confirm recovery: run diagnostics again and compare with detection",
                "The diagnostics panel compares the run at detection with the latest one.",
                "run_diagnostics",
            ),
        ],
    },
    {
        "key": "schema-rollback",
        "title": "Schema rollback",
        "description": "Roll back a schema migration with Prisma "
        "(playbook: Database Rollback Procedures, Schema Rollback).",
        "steps": [
            (
                "Identify the migration to roll back",
                "The diagnostics check 'Recent schema migrations' lists the latest migrations "
                "(_prisma_migrations, django_migrations, flyway, alembic).",
                "run_diagnostics",
            ),
            (
                "Record a data integrity baseline before changing anything",
                "Run the target's integrity checks as the baseline.",
                "integrity_verification",
            ),
            (
                "Generate the down migration SQL",
                "npx prisma migrate diff \\\n"
                "  --from-schema-datamodel prisma/schema.prisma \\\n"
                "  --to-migrations prisma/migrations \\\n"
                "  --script > down.sql",
                "",
            ),
            (
                "Review down.sql with a second engineer",
                "Look for DROP COLUMN / DROP TABLE that would lose data written since the "
                "migration.",
                "",
            ),
            ("Apply the down migration", "npx prisma db execute --file down.sql", ""),
            (
                "Update the migration history",
                "npx prisma migrate resolve --rolled-back [migration_name]",
                "",
            ),
            (
                "Verify data integrity against the baseline",
                "Record counts, relationships, business rules.",
                "integrity_verification",
            ),
            ("Run diagnostics to confirm the database is healthy", "", "run_diagnostics"),
        ],
    },
    {
        "key": "restore-from-backup",
        "title": "Data restoration from backup",
        "description": "Restore data from a backup "
        "(playbook: Database Rollback Procedures, Data Restoration from Backup).",
        "steps": [
            (
                "Record a data integrity baseline of the damaged state",
                "So the difference after restoring is known.",
                "integrity_verification",
            ),
            (
                "Choose the backup to restore (the latest taken before the issue)",
                "Note its time on the incident: data written after it must be recovered "
                "separately.",
                "",
            ),
            (
                "Restore from the backup",
                "Vercel Postgres: restore from a backup in the Vercel dashboard. Other "
                "providers: follow their restoration procedure.",
                "",
            ),
            (
                "Verify data integrity after the restoration",
                "npx ts-node scripts/verify-data-integrity.ts, or Quell's integrity "
                "verification: record counts, relationships, business rules.",
                "integrity_verification",
            ),
            ("Run diagnostics on the restored database", "", "run_diagnostics"),
        ],
    },
    {
        "key": "point-in-time-recovery",
        "title": "Point-in-time recovery",
        "description": "Recover the database to a moment before the issue "
        "(playbook: Database Rollback Procedures, Point-in-Time Recovery).",
        "steps": [
            (
                "Record a data integrity baseline",
                "The current state, to compare after recovery.",
                "integrity_verification",
            ),
            (
                "Identify the point in time before the issue occurred",
                "Use the incident's timeline, the diagnostics at detection and recent migrations.",
                "run_diagnostics",
            ),
            (
                "Run the provider's point-in-time recovery to that moment",
                "Usually into a new instance; keep the damaged one until verification is done.",
                "",
            ),
            (
                "Point the application at the recovered database",
                "Update the connection string and restart the application's connection pools.",
                "",
            ),
            (
                "Verify data integrity after recovery",
                "Compare with the baseline: record counts, relationships, business rules.",
                "integrity_verification",
            ),
        ],
    },
]


def seed_runbooks(Runbook, RunbookStep) -> int:
    """Create the default runbooks that do not exist yet (existing ones are left as edited)."""
    created = 0
    for position, spec in enumerate(DEFAULT_RUNBOOKS):
        runbook, made = Runbook.objects.get_or_create(
            key=spec["key"],
            defaults={
                "title": spec["title"],
                "description": spec["description"],
                "position": position,
            },
        )
        if not made:
            continue
        created += 1
        for step_position, (title, detail, action) in enumerate(spec["steps"], start=1):
            RunbookStep.objects.create(
                runbook=runbook, position=step_position, title=title, detail=detail, action=action
            )
    return created
