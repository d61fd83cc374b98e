"""The playbook's decision tree ("Decision Tree" chart, nodes A..W, and its "Decision Points").

Data only, plus `build_tree`, which writes it as one tree version. Migration 0004 seeds it as
version 1 (published); `services.tree_seed_playbook` does the same on a database without a tree.
Question and answer keys are stable across versions: answer providers address them.
"""

from __future__ import annotations

from django.utils import timezone

QUESTION, STEP, OUTCOME = "question", "step", "outcome"

TITLE = "Database Issues Incident Response Playbook: decision tree"

# (chart_ref, key, kind, text, help, severity, incident kind, next steps [(text, action)])
NODES = [
    (
        "A",
        "issue_detected",
        STEP,
        "Database Issue Detected",
        "Start here once a database issue is detected.",
        "",
        "",
        [],
    ),
    (
        "B",
        "can_connect",
        QUESTION,
        "Can connect to database?",
        "If no, treat as SEV1 connection issue. If yes, continue assessment.",
        "",
        "",
        [],
    ),
    (
        "C",
        "connection_issue",
        STEP,
        "SEV1: Connection Issue",
        "The database cannot be reached: treat as SEV1.",
        "SEV1",
        "availability",
        [],
    ),
    (
        "D",
        "performance_issue",
        QUESTION,
        "Performance issue?",
        "If yes, assess severity. If no, check for data integrity issues.",
        "",
        "",
        [],
    ),
    (
        "E",
        "recent_schema_change",
        QUESTION,
        "Recent schema change?",
        "If yes, check migration logs. If no, check for infrastructure issues.",
        "",
        "",
        [],
    ),
    (
        "F",
        "check_migration_logs",
        OUTCOME,
        "Check migration logs",
        "A recent schema change is the first suspect.",
        "",
        "",
        [
            (
                "Review recent schema migrations and schema changes on the target",
                "check_migrations",
            ),
            ("If a migration caused it, roll it back", "schema_rollback_runbook"),
            ("Run diagnostics again to confirm the database answers", "run_diagnostics"),
        ],
    ),
    (
        "G",
        "infrastructure_issue",
        QUESTION,
        "Infrastructure issue?",
        "Is the database instance or its provider in trouble (instance down, maintenance window, "
        "planned outage)? If yes, check the provider's status; if no, check network connectivity.",
        "",
        "",
        [],
    ),
    (
        "H",
        "check_provider_status",
        OUTCOME,
        "Check database provider status",
        "",
        "",
        "",
        [
            ("Check the database provider's status page and maintenance windows", ""),
            ("Verify the database instance status", ""),
            ("Run diagnostics to see when the target answers again", "run_diagnostics"),
        ],
    ),
    (
        "I",
        "check_network",
        OUTCOME,
        "Check network connectivity",
        "",
        "",
        "",
        [
            (
                "Check the network path, DNS, firewall rules and connection settings from the "
                "application to the database",
                "",
            ),
            ("Test the connection from Quell", "run_diagnostics"),
            ("Restart the application's database connection pool", "mitigation_runbook"),
        ],
    ),
    (
        "J",
        "performance_severity",
        QUESTION,
        "How severe?",
        "If very slow/timeout, treat as SEV2. If noticeable but usable, treat as SEV3.",
        "",
        "",
        [],
    ),
    (
        "K",
        "data_integrity_issue",
        QUESTION,
        "Data integrity issue?",
        "If yes, assess how widespread it is. If no, check for application logic issues.",
        "",
        "",
        [],
    ),
    (
        "L",
        "major_performance",
        STEP,
        "SEV2: Major Performance Issue",
        "Very slow or timing out: treat as SEV2.",
        "SEV2",
        "performance",
        [],
    ),
    (
        "M",
        "minor_performance",
        STEP,
        "SEV3: Minor Performance Issue",
        "Noticeable but usable: treat as SEV3.",
        "SEV3",
        "performance",
        [],
    ),
    (
        "N",
        "high_load",
        QUESTION,
        "High load?",
        "High database load? If yes, check for resource exhaustion. If no, check for blocking "
        "queries.",
        "",
        "",
        [],
    ),
    (
        "O",
        "resource_exhaustion",
        OUTCOME,
        "Check for resource exhaustion",
        "",
        "",
        "",
        [
            ("Check connections against max_connections and their distribution", "connections"),
            ("Find long-running queries", "long_running_queries"),
            ("Kill problematic queries", "remediation"),
            ("Scale database resources: instance size, read replicas, connection pool size", ""),
        ],
    ),
    (
        "P",
        "blocking_queries",
        OUTCOME,
        "Check for blocking queries",
        "",
        "",
        "",
        [
            ("Find the blocking chains and their root blockers", "blocking_queries"),
            ("Cancel or terminate the root blocker", "remediation"),
        ],
    ),
    (
        "Q",
        "analyze_slow_queries",
        OUTCOME,
        "Analyze slow queries",
        "",
        "",
        "",
        [
            ("Find the slowest queries (pg_stat_statements)", "slow_queries"),
            ("Add appropriate indexes and optimize the slow queries", ""),
        ],
    ),
    (
        "R",
        "integrity_scope",
        QUESTION,
        "How widespread?",
        "How widespread is the data integrity issue? If widespread, treat as SEV2. If isolated, "
        "treat as SEV3.",
        "",
        "",
        [],
    ),
    (
        "S",
        "application_logic",
        OUTCOME,
        "Check for application logic issues",
        "No database performance or integrity problem found.",
        "",
        "other",
        [
            ("Review recent application code changes affecting database access", ""),
            ("Check for recent data imports or bulk operations", ""),
            ("Run diagnostics to rule the database out", "run_diagnostics"),
        ],
    ),
    (
        "T",
        "major_integrity",
        STEP,
        "SEV2: Major Data Integrity Issue",
        "Widespread: treat as SEV2.",
        "SEV2",
        "data_integrity",
        [],
    ),
    (
        "U",
        "minor_integrity",
        STEP,
        "SEV3: Minor Data Integrity Issue",
        "Isolated: treat as SEV3.",
        "SEV3",
        "data_integrity",
        [],
    ),
    (
        "V",
        "consider_pitr",
        OUTCOME,
        "Consider point-in-time recovery",
        "",
        "",
        "",
        [
            ("Record an integrity baseline before any recovery", "integrity_verification"),
            (
                "Identify the point in time before the issue and follow the point-in-time recovery "
                "runbook",
                "pitr_runbook",
            ),
            ("Verify data integrity after recovery", "integrity_verification"),
        ],
    ),
    (
        "W",
        "targeted_fixes",
        OUTCOME,
        "Targeted data fixes",
        "",
        "",
        "",
        [
            ("Record an integrity baseline of the affected data", "integrity_verification"),
            ("Fix the affected records", ""),
            ("Verify data integrity after the fix", "integrity_verification"),
        ],
    ),
]

# (from chart_ref, answer key, label, to chart_ref); unlabelled edges leave a step.
EDGES = [
    ("A", "next", "", "B"),
    ("B", "no", "No", "C"),
    ("B", "yes", "Yes", "D"),
    ("C", "next", "", "E"),
    ("E", "yes", "Yes", "F"),
    ("E", "no", "No", "G"),
    ("G", "yes", "Yes", "H"),
    ("G", "no", "No", "I"),
    ("D", "yes", "Yes", "J"),
    ("D", "no", "No", "K"),
    ("J", "very_slow", "Very slow/timeout", "L"),
    ("J", "usable", "Noticeable but usable", "M"),
    ("L", "next", "", "N"),
    ("N", "yes", "Yes", "O"),
    ("N", "no", "No", "P"),
    ("M", "next", "", "Q"),
    ("K", "yes", "Yes", "R"),
    ("K", "no", "No", "S"),
    ("R", "widespread", "Widespread", "T"),
    ("R", "isolated", "Isolated", "U"),
    ("T", "next", "", "V"),
    ("U", "next", "", "W"),
]


def build_tree(
    *, Tree, Node, Answer, NextStep, version: int, status: str, title: str = TITLE, notes=""
):
    """Write the playbook's tree as one version with the given model classes (migration-safe)."""
    tree = Tree.objects.create(
        version=version,
        title=title,
        status=status,
        notes=notes,
        published_at=timezone.now() if status == "published" else None,
    )
    nodes = {}
    for position, (ref, key, kind, text, help_text, severity, kind_, steps) in enumerate(NODES):
        node = Node.objects.create(
            tree=tree,
            key=key,
            chart_ref=ref,
            kind=kind,
            text=text,
            help=help_text,
            severity=severity,
            incident_kind=kind_,
            position=position,
        )
        nodes[ref] = node
        for n, (step_text, action) in enumerate(steps):
            NextStep.objects.create(node=node, text=step_text, action=action, position=n)
    positions: dict[str, int] = {}
    for source, key, label, target in EDGES:
        positions[source] = positions.get(source, -1) + 1
        Answer.objects.create(
            tree=tree,
            from_node=nodes[source],
            to_node=nodes[target],
            key=key,
            label=label,
            position=positions[source],
        )
    return tree


def ensure_playbook_tree(*, Tree, Node, Answer, NextStep) -> bool:
    """Publish the playbook's tree as version 1 when no tree exists; True if it was written.

    Called by migration 0004 (historical models) and after every migrate or flush (apps.py).
    """
    if Tree.objects.exists():
        return False
    build_tree(
        Tree=Tree,
        Node=Node,
        Answer=Answer,
        NextStep=NextStep,
        version=1,
        status="published",
        notes="The playbook's decision tree as shipped.",
    )
    return True
