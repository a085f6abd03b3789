// The page's live view of workspaces: one WebSocket to /ws/events/ (docs/api.md, "Live
// events"). Every connection starts with a snapshot of the member's workspaces — the
// resync after any gap — then workspace events follow. A lost connection is retried
// with full-jitter exponential backoff (0.5 s doubling up to 30 s, back to the start once
// a snapshot arrived); a ping every 25 s tells the portal the page is alive. No polling.
//
// connectEvents({ onSnapshot(workspaces, unreachableClusters), onWorkspace(event,
// workspace), onState(state) }) → { close() }. `event` is "updated" (the whole
// workspace) or "deleted" ({id, cluster, owner_email}); `state` is "connecting" until
// the first snapshot, "live" once a snapshot arrived, "offline" from a lost connection
// until the next snapshot.

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30000;
const PING_EVERY_MS = 25000;

function eventsUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws/events/`;
}

function backoffDelay(attempt) {
  return Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 16));
}

export function connectEvents({ onSnapshot = () => {}, onWorkspace = () => {}, onState = () => {} } = {}) {
  let socket = null;
  let attempt = 0;
  let retryTimer = null;
  let pingTimer = null;
  let stopped = false;
  let state = null;

  function setState(next) {
    if (next === state) return;
    state = next;
    onState(next);
  }

  function receive(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "snapshot") {
      attempt = 0;
      setState("live");
      onSnapshot(message.workspaces || [], message.unreachable_clusters || []);
    } else if (message.type === "workspace" && state === "live") {
      onWorkspace(message.event, message.workspace);
    }
  }

  function lost(ws) {
    if (ws !== socket) return;
    socket = null;
    clearInterval(pingTimer);
    if (stopped) return;
    setState("offline");
    retryTimer = setTimeout(open, backoffDelay(attempt));
    attempt += 1;
  }

  function open() {
    retryTimer = null;
    const ws = new WebSocket(eventsUrl());
    socket = ws;
    ws.addEventListener("open", () => {
      pingTimer = setInterval(() => ws.send('{"type":"ping"}'), PING_EVERY_MS);
    });
    ws.addEventListener("message", receive);
    ws.addEventListener("close", () => lost(ws));
  }

  setState("connecting");
  open();

  return {
    close() {
      stopped = true;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      if (socket) socket.close(1000);
      socket = null;
    },
  };
}
