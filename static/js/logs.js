// The logs drawer: the start command's output, the tail then live lines, over
// /ws/logs/ (relay/consumers/logs.py). It connects only while open; "Follow" keeps the
// view at the newest line unless the reader scrolled up.

const MAX_LINES = 5000;
const BACKOFF_BASE = 500;
const BACKOFF_CAP = 15_000;

export class LogsDrawer {
  constructor(workspaceId) {
    this.workspaceId = workspaceId;
    this.drawer = document.getElementById("logs-drawer");
    this.output = document.getElementById("logs");
    this.state = document.getElementById("logs-state");
    this.follow = document.getElementById("logs-follow");
    this.button = document.getElementById("logs-button");
    this.socket = null;
    this.attempt = 0;
    this.retry = null;
    this.button.addEventListener("click", () => (this.drawer.hidden ? this.open() : this.close()));
    document.getElementById("logs-close").addEventListener("click", () => this.close());
    this.follow.addEventListener("change", () => this.follow.checked && this.scroll());
  }

  open() {
    this.drawer.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    this.connect();
    this.output.focus();
  }

  close() {
    this.drawer.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    clearTimeout(this.retry);
    if (this.socket) this.socket.close(1000);
    this.socket = null;
    this.button.focus();
  }

  // The workspace runs again (after a stop or a failure): pick the stream up again.
  resume() {
    if (!this.drawer.hidden && !this.socket) this.connect();
  }

  scroll() {
    this.output.scrollTop = this.output.scrollHeight;
  }

  append(lines, replace) {
    const text = lines.join("\n");
    if (replace) this.output.textContent = text;
    else if (text) this.output.textContent += (this.output.textContent ? "\n" : "") + text;
    const all = this.output.textContent.split("\n");
    if (all.length > MAX_LINES) this.output.textContent = all.slice(-MAX_LINES).join("\n");
    if (this.follow.checked) this.scroll();
  }

  connect() {
    if (this.socket) return;
    clearTimeout(this.retry);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams({ workspace: this.workspaceId, tail: "500" });
    const ws = new WebSocket(`${scheme}://${location.host}/ws/logs/?${params}`);
    this.socket = ws;
    let first = true;
    let ended = false;
    this.state.textContent = "Connecting…";
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "lines") {
        this.attempt = 0;
        this.state.textContent = "Live";
        this.append(message.lines, first);
        if (first && !message.lines.length) this.output.textContent = "The start command has written nothing yet.";
        first = false;
      } else if (message.type === "end" || message.type === "error") {
        ended = true;
        this.state.textContent = message.detail || "The log stream ended.";
      }
    };
    ws.onclose = () => {
      if (this.socket !== ws) return;
      this.socket = null;
      if (this.drawer.hidden) return;
      if (ended) return;
      const delay = Math.random() * Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** this.attempt++);
      this.state.textContent = `Disconnected; reconnecting in ${Math.ceil(delay / 1000)} s…`;
      this.retry = setTimeout(() => this.connect(), delay);
    };
  }
}
