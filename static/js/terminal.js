// The browser terminal: xterm.js over /ws/terminal/ (protocol: relay/consumers/terminal.py).
//
// * Every connection uses a fresh single-use ticket (session cookie + CSRF).
// * The shell survives drops: the session id is kept per workspace and tab (sessionStorage,
//   so a reload reattaches too) and sent back on reconnect; the portal replays recent output.
// * Auto-reconnect with full-jitter exponential backoff, except when reconnecting cannot
//   help (terminated by an admin, opened elsewhere, workspace stopped, firewall).
// * Flow control: output is acknowledged only once xterm.js has rendered it, so a fast
//   producer is throttled at the PTY instead of flooding the page.
// * A ping every 25 s keeps the socket alive through idle proxies.
//
// `mountTerminal(host, options)` puts one terminal in `host` (the editor has several);
// `tab` is the layout tab it opens (-1: a plain extra shell), `storageKey` names the
// shell to reattach to. It reports its state through `onStatus(text, level)`.

const PING_EVERY = 25_000;
const ACK_EVERY = 128 * 1024;
const BACKOFF_BASE = 500;
const BACKOFF_CAP = 30_000;
const MESSAGES = {
  ticket_invalid: "The terminal ticket was refused (expired or already used).",
  firewall_blocked: "Your network address is blocked by your organisation's firewall.",
  workspace_not_running: "The workspace is not running. Start it, then reconnect.",
  workspace_stopped: "The workspace stopped.",
  workspace_not_found: "This workspace no longer exists.",
  agent_unavailable: "The workspace's cluster is unreachable; retrying…",
  agent_disconnected: "Lost the connection to the workspace's cluster; retrying…",
  taken_over: "This terminal was opened in another window.",
  too_many_sessions: "Too many terminals are open on this workspace.",
  tab_invalid: "This workspace has no such tab.",
};

// The page's CSRF token: its <meta> (the cookie's name depends on the deployment).
function csrfToken() {
  const meta = document.querySelector("meta[name=csrf-token]");
  return meta ? meta.content : "";
}

let xterm = null;
function loadXterm(urls) {
  xterm ||= Promise.all([import(urls.xterm), import(urls.fit)]);
  return xterm;
}

async function requestTicket(ticketUrl, csrf) {
  const response = await fetch(ticketUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken() || csrf },
  });
  if (response.ok) return (await response.json()).ticket;
  let body = {};
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  const error = new Error(body.detail || `HTTP ${response.status}`);
  error.code = body.code || `http_${response.status}`;
  error.status = response.status;
  throw error;
}

export async function mountTerminal(host, options) {
  const { workspace, tab = 0, ticketUrl, statusUrl, csrf = "", onStatus = () => {} } = options;
  const storageKey = options.storageKey || `enclave.terminal.${workspace}.${tab}`;
  let lastStatus = "";
  const setStatus = (text, level = "info") => {
    lastStatus = text;
    onStatus(text, level);
  };
  // The first ticket is asked for while xterm.js loads (it is valid for 30 s).
  let early = requestTicket(ticketUrl, csrf);
  early.catch(() => {});
  const [{ Terminal }, { FitAddon }] = await loadXterm(options.vendor);
  const term = new Terminal({
    cursorBlink: true,
    scrollback: 5000,
    fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace',
    fontSize: 14,
    theme: { background: "#111318" },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);
  const refit = () => {
    if (host.offsetParent !== null) fit.fit();
  };
  refit();

  const encoder = new TextEncoder();
  let disposed = false;
  let socket = null;
  let attempt = 0;
  let retryTimer = null;
  let pingTimer = null;
  let unacked = 0;
  let giveUp = false;
  let exited = false;

  const send = (data) => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(data);
  };
  const sendJson = (obj) => send(JSON.stringify(obj));

  term.onData((data) => {
    if (exited) {
      // The shell ended: Enter starts a new one.
      if (data === "\r") {
        exited = false;
        sessionStorage.removeItem(storageKey);
        connect();
      }
      return;
    }
    send(encoder.encode(data));
  });
  term.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
  term.onResize(({ cols, rows }) => sendJson({ type: "resize", cols, rows }));
  let resizeTimer = null;
  const observer = new ResizeObserver(() => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(refit, 50);
  });
  observer.observe(host);

  function scheduleRetry(message) {
    if (giveUp) return;
    const delay = Math.random() * Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt);
    attempt += 1;
    setStatus(`${message} Reconnecting in ${Math.ceil(delay / 1000)} s…`, "error");
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  function stop(message, { offerReconnect = true } = {}) {
    giveUp = true;
    setStatus(message, offerReconnect ? "stopped" : "gone");
  }

  async function diagnose() {
    // A refused handshake looks like any network error to a browser: ask the portal why.
    try {
      const response = await fetch(statusUrl, { credentials: "same-origin" });
      const body = await response.json();
      if (response.status === 404) return stop("This workspace no longer exists.");
      if (body.firewall === "blocked") return stop(MESSAGES.firewall_blocked);
      if (body.status && body.status !== "running") return stop(MESSAGES.workspace_not_running);
      return scheduleRetry(MESSAGES.ticket_invalid);
    } catch {
      return scheduleRetry("The portal cannot be reached.");
    }
  }

  async function connect() {
    clearTimeout(retryTimer);
    if (disposed) return;
    if (socket) socket.close();
    socket = null;
    setStatus("Connecting…");
    let raw;
    try {
      raw = await (early || requestTicket(ticketUrl, csrf));
      early = null;
    } catch (error) {
      early = null;
      if (error.code === "workspace_not_running") return stop(MESSAGES.workspace_not_running);
      if (error.status === 404) return stop("This workspace no longer exists.", { offerReconnect: false });
      if (error.status === 401 || error.status === 403) return stop("Please sign in again.");
      return scheduleRetry(error.message + ".");
    }
    const params = new URLSearchParams({
      ticket: raw,
      workspace,
      tab: String(tab),
      cols: String(term.cols),
      rows: String(term.rows),
    });
    const session = sessionStorage.getItem(storageKey);
    if (session) params.set("session", session);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/terminal/?${params}`);
    ws.binaryType = "arraybuffer";
    socket = ws;
    let opened = false;
    unacked = 0;

    ws.onopen = () => {
      opened = true;
      clearInterval(pingTimer);
      pingTimer = setInterval(() => sendJson({ type: "ping" }), PING_EVERY);
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") {
        const bytes = new Uint8Array(event.data);
        term.write(bytes, () => {
          unacked += bytes.length;
          if (unacked >= ACK_EVERY && ws.readyState === WebSocket.OPEN) {
            ws.send(JSON.stringify({ type: "ack", bytes: unacked }));
            unacked = 0;
          }
        });
        return;
      }
      const message = JSON.parse(event.data);
      if (message.type === "session") {
        attempt = 0;
        sessionStorage.setItem(storageKey, message.session);
        setStatus(message.resumed ? "Reconnected to your shell." : "Connected.", "ok");
        if (!message.resumed) term.reset();
      } else if (message.type === "terminated") {
        sessionStorage.removeItem(storageKey);
        stop(message.detail);
      } else if (message.type === "exit") {
        sessionStorage.removeItem(storageKey);
        if (message.reason === "exited" || message.reason === "terminated") {
          exited = true;
          giveUp = true;
          const code = message.code === null || message.code === undefined ? "" : ` (code ${message.code})`;
          setStatus(`The shell ended${code}. Press Enter for a new one.`);
        } else {
          stop(MESSAGES[message.reason] || `The shell ended: ${message.reason}.`);
        }
      } else if (message.type === "error") {
        if (message.code === "taken_over") sessionStorage.removeItem(storageKey);
        setStatus(MESSAGES[message.code] || message.detail, "error");
      }
    };
    ws.onclose = (event) => {
      clearInterval(pingTimer);
      if (socket !== ws) return; // replaced by a newer connection
      socket = null;
      if (!opened) return diagnose();
      switch (event.code) {
        case 4000: // terminated by an administrator (message already shown)
          return stop(lastStatus || "An administrator ended this session.");
        case 4409:
          return stop(MESSAGES[event.reason] || MESSAGES.workspace_not_running);
        case 4410:
          return stop(MESSAGES.taken_over);
        case 4404:
        case 4429:
          return stop(MESSAGES[event.reason] || "The terminal was refused.");
        case 1000:
          if (exited || giveUp) return;
          return scheduleRetry("Disconnected.");
        default:
          return scheduleRetry(MESSAGES[event.reason] || "Connection lost.");
      }
    };
  }

  connect();
  return {
    term,
    focus: () => term.focus(),
    fit: refit,
    reconnect() {
      giveUp = false;
      exited = false;
      attempt = 0;
      connect();
    },
    // Closing a tab ends its shell: forget the session so nothing reattaches to it.
    dispose({ forget = true } = {}) {
      disposed = true;
      giveUp = true;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      observer.disconnect();
      if (forget) sessionStorage.removeItem(storageKey);
      if (socket) socket.close(1000);
      socket = null;
      term.dispose();
    },
  };
}
