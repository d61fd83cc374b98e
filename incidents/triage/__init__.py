"""Triage: the playbook's decision tree as versioned data, and responders' walks through it.

models      TriageTree (a version), TriageNode, TriageAnswer (edges), TriageNextStep,
            TriageWalk and TriageStep (what a responder answered, when, and what was suggested)
playbook    the playbook's tree (A..W of its "Decision Tree" chart) as data, and its seeding
validation  the rules a tree must pass before it is published
actions     the Quell actions a next step can point to (links resolved without importing apps)
services    writes: seed, draft/publish versions, start/answer/back/restart a walk, apply outcome
selectors   reads: current tree, walk state, suggestions from the answer providers
api         REST endpoints (routed from incidents/api/urls.py)
views       the incident page's triage panel and its actions (routed from incidents/urls.py)
admin       tree versions as drafts, validation, publishing; walks read-only

See docs/triage.md.
"""
