// Keyboard shortcuts (listed on every page under "Keyboard shortcuts") and small helpers.
// Single keys, ignored while typing in a field or with a modifier held.
(function () {
  "use strict";

  function typing(target) {
    if (!target) return false;
    var tag = target.tagName;
    return target.isContentEditable || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  function go(selector) {
    var link = document.querySelector(selector);
    if (link && link.href) window.location.assign(link.href);
  }

  function focus(selector) {
    var el = document.querySelector(selector);
    if (!el) return;
    if (!el.hasAttribute("tabindex") && !/^(INPUT|SELECT|TEXTAREA|BUTTON|A)$/.test(el.tagName)) {
      el.setAttribute("tabindex", "-1");
    }
    el.focus();
    if (el.scrollIntoView) el.scrollIntoView({ block: "start" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    var help = document.getElementById("shortcuts-help");
    switch (event.key) {
      case "/":
        event.preventDefault();
        focus("[data-shortcut='search']");
        break;
      case "n":
        go("[data-shortcut='declare']");
        break;
      case "i":
        go("[data-shortcut='incidents']");
        break;
      case "m":
        go("[data-shortcut='metrics']");
        break;
      case "t":
        focus("#timeline-heading");
        break;
      case "s":
        focus("#status-heading");
        break;
      case "r":
        focus("#roles-heading");
        break;
      case "?":
        if (help) {
          help.open = !help.open;
          if (help.open) help.querySelector("summary").focus();
        }
        break;
      default:
        return;
    }
  });

  // The "Other" role needs a name: show that field only when it applies.
  document.addEventListener("change", function (event) {
    if (event.target && event.target.name === "role") syncRoleName(event.target.form);
  });
  function syncRoleName(form) {
    if (!form) return;
    var role = form.querySelector("[name=role]");
    var wrap = form.querySelector("[data-role-name]");
    if (role && wrap) wrap.hidden = role.value !== "other";
  }
  function syncAll() {
    document.querySelectorAll("form[data-assign-form]").forEach(syncRoleName);
  }
  document.addEventListener("DOMContentLoaded", syncAll);
  document.addEventListener("htmx:afterSettle", syncAll);

  // An action replaces the incident's body; keep keyboard users where they were: back on the
  // section they acted in (its first error if any, else its heading), not at the page's top.
  var lastSection = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var aimed = event.detail && event.detail.target && event.detail.target.id === "incident-body";
    if (!aimed) return; // the timeline's own polling, other panels
    var section = event.target.closest && event.target.closest("section[aria-labelledby]");
    lastSection = section ? section.getAttribute("aria-labelledby") : null;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!lastSection) return;
    var sectionId = lastSection;
    lastSection = null;
    var conflict = document.querySelector("#incident-body .conflict");
    if (conflict) { conflict.focus(); return; }
    var heading = document.getElementById(sectionId);
    if (!heading) return;
    var section = heading.closest("section");
    var error = section && section.querySelector("[role=alert], .errorlist");
    var target = error || heading;
    if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
    target.focus();
  });

  // An action in one form re-renders the region around it (Assign re-renders the incident's
  // body): text half-typed in the region's other forms (a note, a reason, the summary) is put
  // back after the swap. The form that was sent is left as the server answered it (cleared
  // when saved, with its errors when not), and so is a field whose saved value changed meanwhile.
  var TYPED = "textarea, input:not([type]), input[type=text], input[type=number], input[type=email], " +
    "input[type=url], input[type=search], input[type=date], input[type=time], input[type=datetime-local]";
  var typing = [];
  document.addEventListener("htmx:beforeSwap", function (event) {
    var d = event.detail;
    typing = [];
    if (!d || !d.target || !d.target.querySelectorAll) return;
    // htmx 2 fires beforeSwap on the target; the element that sent the request is in its config.
    var source = (d.requestConfig && d.requestConfig.elt) || d.elt;
    var sent = source && source.closest ? source.closest("form") : null;
    d.target.querySelectorAll(TYPED).forEach(function (field) {
      if (!field.id || field.value === field.defaultValue) return;
      if (sent && field.form === sent) return;
      typing.push({ id: field.id, value: field.value, saved: field.defaultValue });
    });
  });
  document.addEventListener("htmx:afterSwap", function () {
    var kept = typing;
    typing = [];
    kept.forEach(function (entry) {
      var field = document.getElementById(entry.id);
      if (!field || field.defaultValue !== entry.saved || field.value !== field.defaultValue) return;
      field.value = entry.value;
      for (var open = field.closest("details"); open; open = open.parentElement.closest("details")) {
        open.open = true;
      }
    });
  });

  // A refused or failed htmx request (403, 404, 5xx, network): say so instead of doing nothing.
  function showRequestError(text) {
    var box = document.getElementById("request-error");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }
  // A 403 whose answer is the panel with the refusal in it (data-panel-refusal) replaces the
  // panel like a 400 does: the server kept the form and the typed text.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var d = event.detail;
    if (!d || !d.xhr || d.xhr.status !== 403) return;
    if ((d.xhr.responseText || "").indexOf("data-panel-refusal") !== -1) {
      d.shouldSwap = true;
      d.isError = false;
    }
  });

  // Any other refusal is said inside the panel that asked, leaving its form as it was typed.
  function refusalText(xhr) {
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      var el = doc.querySelector("[data-refusal]");
      if (el && el.textContent.trim()) return el.textContent.trim();
    } catch (e) { /* fall back to the generic text */ }
    return "You are not allowed to do that (your access may have changed).";
  }
  function showInPanel(elt, text) {
    var panel = elt && elt.closest && elt.closest("section, .card, .comms-panel, form");
    if (!panel) return false;
    var box = panel.querySelector(":scope > .panel-refusal");
    if (!box) {
      box = document.createElement("p");
      box.className = "error panel-refusal";
      box.setAttribute("role", "alert");
      panel.insertBefore(box, panel.firstChild);
    }
    box.textContent = text;
    box.scrollIntoView({ block: "nearest" });
    return true;
  }
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    var status = xhr ? xhr.status : 0;
    if (status === 403 && showInPanel(event.detail.elt, refusalText(xhr))) return;
    var text = status === 403
      ? "You are not allowed to do that (your access may have changed). Reload the page."
      : status === 404
        ? "That no longer exists. Reload the page."
        : "The server could not complete that (" + status + "). Nothing was lost: try again.";
    showRequestError(text);
  });
  document.addEventListener("htmx:sendError", function () {
    showRequestError("Quell cannot be reached. Check your connection; the page will keep trying.");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var box = document.getElementById("request-error");
    if (box && event.detail && event.detail.successful) box.hidden = true;
  });
})();

// "Print" buttons (data-print): a listener here, since the Content-Security-Policy forbids
// inline onclick handlers.
document.addEventListener("click", function (event) {
  if (event.target.closest && event.target.closest("[data-print]")) window.print();
});
