// Applies the colour theme chosen with the toggle before the page paints (no flash); "auto" follows the system.
(function () {
  "use strict";
  try {
    var theme = window.localStorage.getItem("theme");
    if (theme === "light" || theme === "dark") document.documentElement.setAttribute("data-theme", theme);
  } catch (e) { /* storage blocked: follow the system */ }
})();
