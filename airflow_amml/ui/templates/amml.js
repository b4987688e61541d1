/* Links out of Airflow's iframe (the only script of the AMML pages; they work without it).
 *
 * Airflow 3.3 shows the ML Models page in <iframe sandbox="allow-scripts allow-same-origin allow-forms ...">:
 * without allow-top-navigation, a click on a target="_top" link (the run that trained a version, "Log in to
 * Airflow") is blocked. Framed by Airflow's own UI (same origin), this script turns such a click into a
 * navigation of Airflow's single-page app: history.pushState on the top window and a popstate event, which
 * React Router follows as it follows the back button. The state carries the next history index, as React
 * Router's own entries do. Stand-alone, or for a link to another site, the link works as the browser does.
 */
(function () {
  "use strict";
  var top = null;
  try {
    if (window.top !== window && window.top.location.origin === window.location.origin) {
      top = window.top;
    }
  } catch (e) {
    top = null; // framed by another origin: leave every link alone
  }
  if (top === null) {
    return;
  }
  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return; // a new tab or window: the browser's own handling
    }
    var link = event.target instanceof Element ? event.target.closest('a[target="_top"][href]') : null;
    if (link === null) {
      return;
    }
    var url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin) {
      return;
    }
    event.preventDefault();
    var state = top.history.state;
    var index = state && typeof state.idx === "number" ? state.idx + 1 : 0;
    var key = Math.random().toString(36).slice(2, 10);
    top.history.pushState({ usr: null, key: key, idx: index }, "", url.pathname + url.search + url.hash);
    top.dispatchEvent(new PopStateEvent("popstate", { state: top.history.state }));
  });
})();
