/*
 * Enclave preview bridge, served at /__enclave__/bridge.js on every preview host and
 * loaded by a tag the preview origin puts in the app's HTML pages and in its own error
 * pages. It tells the portal page that frames the preview which page is shown, and lets
 * that page's Back / Forward / Reload buttons and path bar drive the preview.
 *
 * To the portal (window.parent, target origin the tag's data-portal, only when framed):
 *   {source: "enclave-preview", type: "location", path, title}
 *     on DOMContentLoaded, after history.pushState / replaceState, on popstate and
 *     hashchange (what happens in one turn of the event loop is reported once);
 *   {source: "enclave-preview", type: "error", code, status, detail, retry_in}
 *     on the preview's own error pages (the tag's data-error, data-status, data-detail);
 *     retry_in is the number of seconds before the page reloads itself (data-retry), or
 *     null when it does not.
 * From the portal, obeyed only when event.origin is data-portal and event.source is
 * window.parent:
 *   {source: "enclave-portal", type: "back" | "forward" | "reload" | "navigate", path?}
 *     "navigate" takes a path on this origin only ("/…", not "//…").
 *
 * Defensive: every entry point catches its own errors, so the bridge never throws into
 * the app; the only global it leaves is the guard flag __enclaveBridge.
 */
(function () {
  "use strict";

  var RETRY_CAP = 10;
  var RETRY_KEY = "enclave-preview-retry:";

  try {
    if (window.__enclaveBridge) {
      return;
    }
    Object.defineProperty(window, "__enclaveBridge", { value: true });
  } catch (e) {
    return;
  }

  var script = document.currentScript;
  var portal = script && script.getAttribute("data-portal");
  if (!portal) {
    return;
  }
  var framed = window.parent !== window;

  function post(message) {
    if (!framed) {
      return;
    }
    message.source = "enclave-preview";
    try {
      window.parent.postMessage(message, portal);
    } catch (e) {
      // The parent is not the portal (the message is dropped) or the data cannot be cloned.
    }
  }

  function currentPath() {
    return location.pathname + location.search + location.hash;
  }

  var pending = false;

  function reportLocation() {
    pending = false;
    post({ type: "location", path: currentPath(), title: String(document.title || "") });
  }

  // Reported at the end of the turn: a router that sets the title right after pushState
  // is reported with its new title, and a push followed by a replace is one message.
  function scheduleLocation() {
    if (!pending) {
      pending = true;
      setTimeout(function () {
        try {
          reportLocation();
        } catch (e) {
          pending = false;
        }
      }, 0);
    }
  }

  function wrapHistory(name) {
    var original = history[name];
    if (typeof original !== "function") {
      return;
    }
    history[name] = function () {
      var result = original.apply(this, arguments);
      try {
        scheduleLocation();
      } catch (e) {
        // Never let the report break the app's navigation.
      }
      return result;
    };
  }

  function storage() {
    try {
      return window.sessionStorage || null;
    } catch (e) {
      return null;
    }
  }

  function retryKey() {
    return RETRY_KEY + location.pathname + location.search;
  }

  // The delay before the next automatic reload of an error page: 1 s, 2 s, 4 s … capped
  // at RETRY_CAP, the attempt count kept per path for this tab (RETRY_CAP without storage).
  function nextRetryDelay() {
    var store = storage();
    if (!store) {
      return RETRY_CAP;
    }
    var attempt = 0;
    try {
      attempt = parseInt(store.getItem(retryKey()), 10) || 0;
      store.setItem(retryKey(), String(attempt + 1));
    } catch (e) {
      return RETRY_CAP;
    }
    return Math.min(Math.pow(2, Math.min(attempt, 8)), RETRY_CAP);
  }

  function forgetRetries() {
    var store = storage();
    try {
      if (store) {
        store.removeItem(retryKey());
      }
    } catch (e) {
      // Nothing to forget.
    }
  }

  function showCountdown(seconds) {
    var line = document.createElement("p");
    line.setAttribute("role", "status");
    document.body.appendChild(line);
    var left = seconds;
    function tick() {
      line.textContent = "Retrying in " + left + " s\u2026";
      left -= 1;
      if (left > 0) {
        setTimeout(tick, 1000);
      }
    }
    tick();
  }

  function reportError() {
    var code = script.getAttribute("data-error");
    var retryIn = null;
    if (script.hasAttribute("data-retry")) {
      retryIn = nextRetryDelay();
      setTimeout(function () {
        location.reload();
      }, retryIn * 1000);
      try {
        showCountdown(retryIn);
      } catch (e) {
        // The page still reloads.
      }
    }
    post({
      type: "error",
      code: code,
      status: parseInt(script.getAttribute("data-status"), 10) || 0,
      detail: script.getAttribute("data-detail") || "",
      retry_in: retryIn,
    });
  }

  function loaded() {
    try {
      reportLocation();
      if (script.hasAttribute("data-error")) {
        reportError();
      } else {
        forgetRetries();
      }
    } catch (e) {
      // The portal keeps its last known state.
    }
  }

  // Within this frame's own entries only: the joint session history of a frame reaches
  // into the portal's, and going back past the app's first page must not leave the editor.
  function traverse(direction) {
    var nav = window.navigation;
    if (nav && typeof nav.back === "function") {
      if (direction < 0 ? nav.canGoBack : nav.canGoForward) {
        var result = direction < 0 ? nav.back() : nav.forward();
        if (result && result.finished) {
          result.committed.catch(function () {});
          result.finished.catch(function () {});
        }
      }
    } else if (direction < 0) {
      history.back();
    } else {
      history.forward();
    }
  }

  function navigate(path) {
    if (typeof path !== "string" || path.charAt(0) !== "/" || path.charAt(1) === "/") {
      return;
    }
    var target = new URL(path, location.href);
    if (target.origin === location.origin) {
      location.assign(target.href);
    }
  }

  function obey(event) {
    try {
      if (!framed || event.origin !== portal || event.source !== window.parent) {
        return;
      }
      var data = event.data;
      if (!data || typeof data !== "object" || data.source !== "enclave-portal") {
        return;
      }
      if (data.type === "back") {
        traverse(-1);
      } else if (data.type === "forward") {
        traverse(1);
      } else if (data.type === "reload") {
        location.reload();
      } else if (data.type === "navigate") {
        navigate(data.path);
      }
    } catch (e) {
      // A command that cannot be carried out is ignored.
    }
  }

  try {
    wrapHistory("pushState");
    wrapHistory("replaceState");
    window.addEventListener("popstate", scheduleLocation);
    window.addEventListener("hashchange", scheduleLocation);
    window.addEventListener("message", obey);
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", loaded);
    } else {
      loaded();
    }
  } catch (e) {
    // An environment without these APIs simply has no bridge.
  }
})();
