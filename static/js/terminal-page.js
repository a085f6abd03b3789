// The standalone terminal page (/workspaces/<id>/terminal): one full-window terminal.
import { mountTerminal } from "./terminal.js";

const root = document.getElementById("terminal-root");
const statusLine = document.getElementById("terminal-status");
const reconnectButton = document.getElementById("terminal-reconnect");

function setStatus(text, level) {
  statusLine.textContent = text;
  statusLine.dataset.level = level === "stopped" || level === "gone" ? "error" : level;
  reconnectButton.hidden = level !== "stopped";
}

mountTerminal(document.getElementById("terminal"), {
  workspace: root.dataset.workspace,
  tab: Number(root.dataset.tab || 0),
  ticketUrl: root.dataset.ticketUrl,
  statusUrl: root.dataset.statusUrl,
  csrf: root.dataset.csrf,
  vendor: { xterm: root.dataset.xterm, fit: root.dataset.fit },
  onStatus: setStatus,
})
  .then((terminal) => {
    terminal.focus();
    reconnectButton.addEventListener("click", () => terminal.reconnect());
  })
  .catch((error) => setStatus(`The terminal could not start: ${error.message}`, "error"));
