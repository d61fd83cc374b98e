"""Responder web pages: incident list, declare, incident page and its actions, metrics.

Modules: `access` (sign-in, role and lookup helpers), `browse` (list and declare), `page`
(the incident page, its panels and timeline), `actions` (what the page posts), `insights`
(the metrics dashboard and the Prometheus exposition).

Views stay thin: forms validate, `incidents.services` write, `incidents.selectors` read, and
what other apps contribute (panels, databases) comes from `incidents.registry`. Permissions
match the API (incidents.permissions): viewers read, responders act, commanders and the
incident's own Incident Commander change status and severity. A forbidden action is not
offered on the page and is refused here (403).

Actions post with htmx and get back the incident's body fragment (HX-Trigger: incidentChanged
lets other panels refresh); without JavaScript they post normally and are redirected back.
"""
