// Adds the browser's local time beside every server-rendered UTC <time datetime>, including in
// fragments htmx swaps in later. A static file because the CSP allows no inline script.
(function () {
  "use strict";
  var fmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short" });
  function localize(root) {
    var els = (root || document).querySelectorAll("time[datetime]:not([data-local])");
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) continue;
      el.setAttribute("data-local", "1");
      var span = document.createElement("span");
      span.className = "local-time";
      span.textContent = " (" + fmt.format(d) + ")";
      el.appendChild(span);
    }
  }
  document.addEventListener("DOMContentLoaded", function () { localize(document); });
  // htmx fires htmx:load on each element it swaps in.
  document.addEventListener("htmx:load", function () { localize(document); });
})();
