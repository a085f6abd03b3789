// The Chat tab: the workspace's own assistant (the OpenCode web UI, started inside the
// workspace on its internal "assistant" port) in a frame on the preview origin — the same
// ticket, cookie, firewall and audit as the app preview. The portal only shows the frame:
// the conversation goes from the frame to the workspace and from there to the LLM
// provider, never through the portal's database or logs.
//
// Once the assistant answers, the workspace's entrypoint writes where its chat opens
// (`.enclave/assistant.json`: the OpenCode page of the workspace's project and session);
// until then, and until the frame's bridge reports its first page, the tab says
// "Starting the assistant…".

import { api } from "./api.js";
import { el } from "./ui.js";

const WAITING = new Set(["upstream_unavailable", "upstream_timeout", "cluster_unavailable"]);
const LOCATION_FILE = ".enclave/assistant.json";
const POLL_MS = 1000;
const GIVE_UP_MS = 120_000;

export function mountChat(panel, { ticketUrl, filesUrl, origin, available, port, present }) {
  if (!available) {
    panel.append(
      el("div", { class: "chat-state", role: "status" },
        el("p", { class: "chat-state-title", text: "No AI provider is configured for this blueprint — ask your administrator." }),
        el("p", { class: "muted", text: "Once a provider is set up, restart the workspace to start the assistant." }),
      ),
    );
    return {};
  }
  if (!present) {
    panel.append(
      el("div", { class: "chat-state", role: "status" },
        el("p", { class: "chat-state-title", text: "The assistant is not set up in this workspace yet." }),
        el("p", { class: "muted", text: "Its blueprint gained the Chat tab after it was created: ask your administrator to upgrade it." }),
      ),
    );
    return {};
  }
  const frame = el("iframe", {
    class: "chat-frame",
    title: "AI chat",
    referrerpolicy: "no-referrer",
    sandbox: "allow-scripts allow-same-origin allow-forms allow-popups allow-modals allow-downloads",
    allow: "clipboard-read; clipboard-write",
  });
  const title = el("p", { class: "chat-state-title", text: "Starting the assistant…" });
  const detail = el("p", { class: "muted", text: "It takes a few seconds the first time." });
  const state = el("div", { class: "chat-state overlay", role: "status", "aria-live": "polite" }, title, detail);
  panel.append(frame, state);
  let shown = false;

  function show(text, more) {
    title.textContent = text;
    detail.textContent = more;
    state.hidden = false;
  }

  // Where the assistant's chat opens, once it has started (null while it starts).
  async function chatPath() {
    try {
      const file = await api("GET", `${filesUrl}/content?${new URLSearchParams({ path: LOCATION_FILE })}`);
      const path = JSON.parse(file.content || "{}").path;
      return typeof path === "string" && path.startsWith("/") ? path : null;
    } catch {
      return null; // not written yet (404), or the workspace is restarting
    }
  }

  let loading = 0;
  async function load() {
    const attempt = ++loading;
    shown = false;
    show("Starting the assistant…", "It takes a few seconds the first time.");
    const started = Date.now();
    let path = await chatPath();
    while (!path && attempt === loading) {
      if (Date.now() - started > GIVE_UP_MS) {
        show("The assistant did not start", "Open the logs to see why, or restart the workspace.");
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      path = await chatPath();
    }
    if (attempt !== loading) return;
    try {
      const body = await api("POST", ticketUrl, { port, path });
      frame.src = body.url;
    } catch (error) {
      show("The assistant could not be opened", error.message);
    }
  }

  window.addEventListener("message", (event) => {
    if (event.source !== frame.contentWindow || event.origin !== origin) return;
    const message = event.data;
    if (!message || message.source !== "enclave-preview") return;
    if (message.type === "location") {
      shown = true;
      state.hidden = true;
    } else if (message.type === "error" && !shown) {
      if (WAITING.has(message.code)) show("Starting the assistant…", "It takes a few seconds the first time.");
      else show("The assistant is not available", message.detail || "");
    }
  });

  load();
  return {
    reconnect: load,
    focus() {
      frame.focus();
    },
  };
}
