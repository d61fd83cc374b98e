// The postmortem editor's behaviour (a static file: the Content-Security-Policy allows no inline scripts).
(function () {
  "use strict";
  // "Preview" scrolls to the preview once it has arrived.
  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.elt.hasAttribute("data-scroll-to-preview")) return;
    var preview = document.getElementById("preview");
    if (preview) preview.scrollIntoView({ block: "start" });
  });
  // "Replace mine with theirs": copy the other author's Markdown into the field.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-use-theirs]");
    if (!button) return;
    var name = button.getAttribute("data-use-theirs");
    var theirs = document.getElementById("theirs-" + name);
    var mine = document.getElementById("id_" + name);
    if (theirs && mine) { mine.value = theirs.value; mine.focus(); }
  });
  // Warn before leaving with unsaved typing (autosave may not have run yet).
  (function () {
    var form = document.getElementById("pm-form");
    if (!form) return;
    var dirty = false;
    form.addEventListener("input", function () { dirty = true; });
    form.addEventListener("submit", function () { dirty = false; });
    document.body.addEventListener("htmx:afterRequest", function (e) {
      if (e.detail.elt === form && e.detail.successful) dirty = false;
    });
    window.addEventListener("beforeunload", function (e) { if (dirty) { e.preventDefault(); e.returnValue = ""; } });
  })();
  // A copy of the form in this browser's storage, so typed text survives a crash, a closed tab
  // or an expired session. Offered back on the next visit when it differs from what Quell has.
  (function () {
    var form = document.getElementById("pm-form");
    var store;
    try { store = window.localStorage; } catch (e) { return; }
    if (!form || !store) return;
    var key = form.getAttribute("data-local-key");
    function fields() {
      return Array.prototype.filter.call(form.elements, function (el) {
        return el.name && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && (el.type === "text" || el.type === "checkbox")));
      });
    }
    function snapshot() {
      var values = {};
      fields().forEach(function (el) {
        values[el.type === "checkbox" ? el.name + ":" + el.value : el.name] = el.type === "checkbox" ? el.checked : el.value;
      });
      return values;
    }
    function apply(values) {
      fields().forEach(function (el) {
        var k = el.type === "checkbox" ? el.name + ":" + el.value : el.name;
        if (!(k in values)) return;
        if (el.type === "checkbox") el.checked = values[k]; else el.value = values[k];
      });
      form.dispatchEvent(new Event("input", { bubbles: true }));
    }
    var stored = null;
    try { stored = JSON.parse(store.getItem(key) || "null"); } catch (e) { stored = null; }
    if (stored && JSON.stringify(stored.values) !== JSON.stringify(snapshot())) {
      var box = document.getElementById("pm-local-copy");
      box.querySelector("[data-local-when]").textContent = "on " + new Date(stored.at).toLocaleString();
      box.hidden = false;
      box.addEventListener("click", function (event) {
        var action = event.target.getAttribute("data-local");
        if (action === "restore") apply(stored.values);
        if (action === "restore" || action === "discard") { box.hidden = true; if (action === "discard") store.removeItem(key); }
      });
    } else {
      store.removeItem(key);
    }
    var timer = null;
    form.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        try { store.setItem(key, JSON.stringify({ at: Date.now(), values: snapshot() })); } catch (e) { /* storage full or disabled */ }
      }, 400);
    });
  })();
})();
