// Small progressive enhancements. No inline scripts anywhere: the Content Security Policy forbids them.
(function () {
  "use strict";
  // Ask before destructive submits: <button data-confirm="Sure?">.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);
  // Copy buttons: <button data-copy="#input-id"> copies a field, data-copy-text its own value,
  // data-copy-block the <pre> of the .json-block it sits in.
  function copyText(button) {
    if (button.hasAttribute("data-copy-text")) return button.getAttribute("data-copy-text");
    if (button.hasAttribute("data-copy-block")) {
      var pre = button.closest(".json-block, .snippet").querySelector("pre");
      return pre ? pre.textContent : null;
    }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return null;
    if (source.select) source.select();
    return source.value !== undefined ? source.value : source.textContent;
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy], [data-copy-text], [data-copy-block]");
    if (!button) return;
    var text = copyText(button);
    if (text === null) return;
    var label = button.innerHTML;  // our own markup (text, or the icon's SVG)
    var done = function () {
      button.textContent = button.classList.contains("icon-btn") ? "✓" : "Copied";
      button.setAttribute("data-copied", "true");
      window.setTimeout(function () { button.innerHTML = label; button.removeAttribute("data-copied"); }, 1500);
    };
    var fallback = function () {
      var area = document.createElement("textarea");
      area.value = text; area.setAttribute("readonly", ""); area.className = "visually-hidden";
      document.body.appendChild(area); area.select();
      try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
      document.body.removeChild(area); button.focus(); done();
    };
    // The clipboard API needs a secure context and the page's focus; the older way covers the rest.
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done, fallback); }
    else { fallback(); }
  });
  // The trace timeline: the span opened through htmx becomes the selected row (its id is pushed to the URL).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var link = event.target.closest && event.target.closest(".span-label");
    if (!link) return;
    document.querySelectorAll(".span-row.selected").forEach(function (row) { row.classList.remove("selected"); });
    document.querySelectorAll(".span-label[aria-current]").forEach(function (a) { a.removeAttribute("aria-current"); });
    link.closest(".span-row").classList.add("selected");
    link.setAttribute("aria-current", "true");
  });
  // Small screens: the navigation folds behind a Menu button.
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest(".menu-toggle");
    if (!toggle) return;
    var bar = toggle.closest(".topbar");
    var open = bar.getAttribute("data-open") !== "true";
    bar.setAttribute("data-open", open ? "true" : "false");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });
  // Colour theme: auto (the system's) → light → dark, remembered in this browser.
  var THEMES = ["auto", "light", "dark"];
  var LABELS = { auto: "◐ Auto", light: "☀ Light", dark: "☾ Dark" };
  function currentTheme() {
    return document.documentElement.getAttribute("data-theme") || "auto";
  }
  function showTheme() {
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      var theme = currentTheme();
      button.textContent = LABELS[theme];

    });
  }
  document.addEventListener("click", function (event) {
    if (!event.target.closest("[data-theme-toggle]")) return;
    var next = THEMES[(THEMES.indexOf(currentTheme()) + 1) % THEMES.length];
    if (next === "auto") document.documentElement.removeAttribute("data-theme");
    else document.documentElement.setAttribute("data-theme", next);
    try { window.localStorage.setItem("theme", next); } catch (e) { /* not remembered */ }
    showTheme();
  });
  document.addEventListener("DOMContentLoaded", showTheme);
  // Forms that came back with errors: focus the first bad field (the summary above lists them all).
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector("[data-error-summary]")) return;
    var first = document.querySelector("[aria-invalid=true]");
    if (first) first.focus();
  });
  // JSON text areas get a Format button: pretty-prints valid JSON, or says where it breaks (line and column).
  function jsonError(text, error) {
    var match = /position (\d+)/.exec(error.message);
    if (!match) return error.message;
    var before = text.slice(0, Number(match[1])).split("\n");
    return "Not valid JSON at line " + before.length + ", column " + (before[before.length - 1].length + 1) + ": " + error.message;
  }
  function addFormatButtons(root) {
    root.querySelectorAll("textarea[data-json]:not([data-json-ready])").forEach(function (area) {
      area.setAttribute("data-json-ready", "");
      var row = document.createElement("div");
      row.className = "json-tools";
      var button = document.createElement("button");
      button.type = "button"; button.className = "btn small"; button.textContent = "Format JSON";
      var status = document.createElement("small");
      status.setAttribute("role", "status");
      row.appendChild(button); row.appendChild(status);
      area.insertAdjacentElement("afterend", row);
      button.addEventListener("click", function () {
        var text = area.value.trim();
        if (!text) { status.className = "muted"; status.textContent = "Empty: nothing to check."; return; }
        try {
          var value = JSON.parse(text);
          var wanted = area.getAttribute("data-json");
          if (wanted === "list" && !Array.isArray(value)) throw new Error("Give a JSON list: [ ... ]");
          if (wanted === "object" && (value === null || typeof value !== "object" || Array.isArray(value))) throw new Error("Give a JSON object: { ... }");
          area.value = JSON.stringify(value, null, 2);
          status.className = "ok-text"; status.textContent = "Valid JSON.";
        } catch (error) {
          status.className = "error-text"; status.textContent = jsonError(text, error);
        }
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { addFormatButtons(document); });
  // The builder's model picker offers the chosen provider's models (any name can still be typed).
  function pickModelList() {
    var provider = document.getElementById("id_provider_id");
    var model = document.getElementById("id_model");
    if (!provider || !model) return;
    var wanted = "models-" + (provider.value || "default");
    model.setAttribute("list", document.getElementById(wanted) ? wanted : "models-default");
  }
  document.addEventListener("change", function (event) { if (event.target.id === "id_provider_id") pickModelList(); });
  document.addEventListener("DOMContentLoaded", pickModelList);
  document.addEventListener("htmx:afterSwap", function (event) { addFormatButtons(event.target); });
  // Loading: a bar at the top of the page and aria-busy on the element while any htmx request runs.
  var inFlight = 0;
  document.addEventListener("htmx:beforeRequest", function (event) {
    inFlight += 1;
    document.body.classList.add("is-loading");
    if (event.target.setAttribute) event.target.setAttribute("aria-busy", "true");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    inFlight = Math.max(0, inFlight - 1);
    if (!inFlight) document.body.classList.remove("is-loading");
    if (event.target.removeAttribute) event.target.removeAttribute("aria-busy");
  });
})();
