// Incident-page panels are self-contained: each includes this file with the id of its root
// element. If the page has htmx, the panel is processed; if not, the vendored copy is loaded
// first. A page that loads htmx itself (even deferred) processes the panel; htmx ignores a
// second pass over the same element. (A static file, not an inline script: the
// Content-Security-Policy allows scripts from Quell's own origin only.)
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var panel = document.getElementById(script.getAttribute("data-panel"));
  if (!panel) return;
  if (window.htmx) { window.htmx.process(panel); return; }
  if (document.querySelector('script[src*="htmx"]')) return;
  var s = document.createElement("script");
  s.src = script.getAttribute("data-htmx-src");
  s.addEventListener("load", function () { window.htmx.process(panel); });
  document.head.appendChild(s);
})();
