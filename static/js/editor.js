// The builder's editor: top bar, resizable split, the layout's tabs (terminals, the AI
// chat, Claude Code and custom-command tabs, files), the preview panel and the logs — one page kept current
// over /ws/events/ (an admin's stop or a rename elsewhere shows up at once).

import { api } from "./api.js";
import { mountChat } from "./chat.js";
import { connectEvents } from "./events.js";
import { mountFiles } from "./files.js";
import { LogsDrawer } from "./logs.js";
import { PreviewPanel } from "./preview.js";
import { mountTerminal } from "./terminal.js";
import { confirmDelete, el, setBadge, toast } from "./ui.js";

const data = JSON.parse(document.getElementById("editor-data").textContent);
let workspace = data.workspace;
const apiUrl = (suffix = "") => `${data.urls.api}${suffix}`;
const locked = data.blueprint.locked;

// --- top bar -------------------------------------------------------------------------------

const nameHeading = document.getElementById("ws-name");
const statusBadge = document.getElementById("ws-status");
const liveState = document.getElementById("live-state");
const buttons = {
  start: document.getElementById("op-start"),
  stop: document.getElementById("op-stop"),
  restart: document.getElementById("op-restart"),
  delete: document.getElementById("op-delete"),
};

const applyNotice = document.getElementById("restart-to-apply");

function renderBar() {
  nameHeading.textContent = workspace.name;
  // The workspace runs with other AI keys, prompts, profile or secrets than today's.
  applyNotice.hidden = !(workspace.status === "running" && workspace.env_digest && workspace.env_digest !== data.env_digest);
  document.title = `${workspace.name} · ${document.title.split(" · ").pop()}`;
  setBadge(statusBadge, workspace);
  const s = workspace.status;
  buttons.start.hidden = !(s === "stopped" || s === "error");
  buttons.stop.hidden = !(s === "running" || s === "deploying");
  buttons.restart.hidden = !(s === "running" || s === "error");
  buttons.delete.disabled = s === "deleting";
}

async function operate(operation) {
  try {
    const updated = await api("POST", apiUrl(`/${operation}`));
    if (updated) update(updated);
  } catch (error) {
    toast(error.message, "error");
  }
}

buttons.start.addEventListener("click", () => operate("start"));
buttons.stop.addEventListener("click", () => operate("stop"));
buttons.restart.addEventListener("click", () => operate("restart"));
document.getElementById("restart-apply").addEventListener("click", () => operate("restart"));
buttons.delete.addEventListener("click", async () => {
  if (!(await confirmDelete(workspace))) return;
  try {
    await api("DELETE", apiUrl());
    window.location.assign(data.urls.dashboard);
  } catch (error) {
    toast(error.message, "error");
  }
});

// Rename in place: click the name (or the pencil), Enter saves, Escape cancels.
const renameForm = document.getElementById("rename-form");
const renameInput = document.getElementById("rename-input");
const renameButton = document.getElementById("rename-button");

function startRename() {
  renameInput.value = workspace.name;
  renameForm.hidden = false;
  nameHeading.hidden = true;
  renameButton.hidden = true;
  renameInput.focus();
  renameInput.select();
}

function endRename() {
  renameForm.hidden = true;
  nameHeading.hidden = false;
  renameButton.hidden = false;
}

renameButton.addEventListener("click", startRename);
nameHeading.addEventListener("click", startRename);
document.getElementById("rename-cancel").addEventListener("click", () => {
  endRename();
  renameButton.focus();
});
renameInput.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    event.preventDefault();
    endRename();
    renameButton.focus();
  }
});
renameForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = renameInput.value.trim();
  if (!name || name === workspace.name) return endRename();
  try {
    const updated = await api("PATCH", apiUrl(), { name });
    update(updated);
    endRename();
    renameButton.focus();
    toast(`Renamed to ${updated.name}.`);
  } catch (error) {
    toast(error.message, "error");
    renameInput.focus();
  }
});

// --- the split -----------------------------------------------------------------------------

const split = document.getElementById("split");
const splitter = document.getElementById("splitter");
const SPLIT_KEY = `enclave.split.${data.me.email}`;

function setSplit(percent, remember = true) {
  const value = Math.min(80, Math.max(20, Math.round(percent)));
  split.style.setProperty("--left", `${value}%`);
  if (splitter) splitter.setAttribute("aria-valuenow", String(value));
  if (remember) localStorage.setItem(SPLIT_KEY, String(value));
}

if (splitter) {
  setSplit(Number(localStorage.getItem(SPLIT_KEY)) || 50, false);
  splitter.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    splitter.setPointerCapture(event.pointerId);
    split.classList.add("dragging");
    const box = split.getBoundingClientRect();
    const move = (e) => setSplit(((e.clientX - box.left) / box.width) * 100);
    const up = () => {
      split.classList.remove("dragging");
      splitter.removeEventListener("pointermove", move);
      splitter.removeEventListener("pointerup", up);
    };
    splitter.addEventListener("pointermove", move);
    splitter.addEventListener("pointerup", up);
  });
  splitter.addEventListener("keydown", (event) => {
    const now = Number(splitter.getAttribute("aria-valuenow"));
    const step = event.shiftKey ? 10 : 2;
    const moves = { ArrowLeft: now - step, ArrowRight: now + step, Home: 20, End: 80 };
    if (event.key in moves) {
      event.preventDefault();
      setSplit(moves[event.key]);
    }
  });
}

// --- tabs ----------------------------------------------------------------------------------

const tabList = document.getElementById("tabs");
const panels = document.getElementById("panels");
const tabs = [];
let extraCount = 0;
const EXTRA_KEY = `enclave.extra-terminals.${workspace.id}`;

function terminalStatusLine(panel) {
  const bar = el("div", { class: "terminal-status-bar" });
  const text = el("span", { class: "terminal-status", role: "status", "aria-live": "polite", text: "Connecting…" });
  const reconnect = el("button", { type: "button", class: "ghost small", text: "Reconnect", hidden: true });
  bar.append(text, reconnect);
  panel.append(bar);
  return { text, reconnect };
}

function addTab({ title, kind, index, extraId }) {
  const id = `tab-${tabs.length}-${Math.random().toString(36).slice(2, 7)}`;
  const button = el("button", {
    type: "button",
    role: "tab",
    id: `${id}-tab`,
    "aria-controls": `${id}-panel`,
    "aria-selected": "false",
    tabindex: "-1",
    class: "tab",
    text: title,
  });
  const panel = el("div", { role: "tabpanel", id: `${id}-panel`, "aria-labelledby": `${id}-tab`, class: `panel-${kind}`, hidden: true });
  const tab = { id, title, kind, index, extraId, button, panel, mounted: null };
  const wrapper = el("div", { class: "tab-wrap" }, button);
  if (extraId !== undefined && !locked) {
    wrapper.append(
      el("button", {
        type: "button",
        class: "tab-close",
        "aria-label": `Close ${title}`,
        title: `Close ${title}`,
        text: "×",
        onclick: () => closeTab(tab),
      }),
    );
  }
  tab.wrapper = wrapper;
  button.addEventListener("click", () => select(tab));
  tabList.append(wrapper);
  panels.append(panel);
  tabs.push(tab);
  return tab;
}

async function mount(tab) {
  if (tab.mounted) return tab.mounted;
  if (tab.kind === "chat") {
    const port = data.chat.port;
    tab.mounted = Promise.resolve(
      mountChat(tab.panel, {
        ticketUrl: apiUrl("/preview-ticket"),
        filesUrl: apiUrl("/files"),
        origin: data.preview_origins[String(port)],
        available: data.chat.available,
        port,
        present: workspace.ports.some((p) => p.port === port),
      }),
    );
    return tab.mounted;
  }
  if (tab.kind === "files") {
    tab.mounted = Promise.resolve(
      mountFiles(tab.panel, { api: apiUrl("/files"), monaco: data.vendor.monaco, onSaved: () => preview && preview.fileSaved() }),
    );
    return tab.mounted;
  }
  const host = el("div", { class: "terminal-host", "aria-label": "Terminal", role: "region" });
  tab.panel.append(host);
  const status = terminalStatusLine(tab.panel);
  const storageKey = tab.extraId !== undefined ? `enclave.terminal.${workspace.id}.extra.${tab.extraId}` : `enclave.terminal.${workspace.id}.${tab.index}`;
  tab.mounted = mountTerminal(host, {
    workspace: workspace.id,
    tab: tab.index,
    storageKey,
    ticketUrl: apiUrl("/shell-ticket"),
    statusUrl: data.urls.terminal_status,
    vendor: data.vendor,
    onStatus(text, level) {
      status.text.textContent = text;
      status.text.dataset.level = level;
      status.reconnect.hidden = level !== "stopped";
    },
  });
  tab.mounted.then((terminal) => status.reconnect.addEventListener("click", () => terminal.reconnect()));
  return tab.mounted;
}

async function select(tab) {
  for (const other of tabs) {
    const active = other === tab;
    other.button.setAttribute("aria-selected", String(active));
    other.button.tabIndex = active ? 0 : -1;
    other.panel.hidden = !active;
    other.wrapper.classList.toggle("active", active);
  }
  sessionStorage.setItem(`enclave.tab.${workspace.id}`, tab.id.split("-")[1]);
  try {
    const mounted = await mount(tab);
    if (mounted.fit) mounted.fit();
    if (mounted.focus && document.activeElement === tab.button) return;
    if (mounted.focus) mounted.focus();
  } catch (error) {
    tab.panel.replaceChildren(el("p", { class: "notice error", role: "alert", text: `This tab could not start: ${error.message}` }));
  }
}

// Arrow keys move between tabs (WAI-ARIA tabs pattern).
tabList.addEventListener("keydown", (event) => {
  const current = tabs.findIndex((t) => t.button === document.activeElement);
  if (current < 0) return;
  const moves = { ArrowLeft: current - 1, ArrowRight: current + 1, Home: 0, End: tabs.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = tabs[(moves[event.key] + tabs.length) % tabs.length];
  next.button.focus();
  select(next);
});

function saveExtras() {
  const extras = tabs.filter((t) => t.extraId !== undefined).map((t) => t.extraId);
  sessionStorage.setItem(EXTRA_KEY, JSON.stringify({ extras, next: extraCount }));
}

function addTerminal(extraId) {
  const id = extraId ?? ++extraCount;
  const count = tabs.filter((t) => t.kind === "terminal").length + 1;
  const tab = addTab({ title: `Terminal ${count}`, kind: "terminal", index: -1, extraId: id });
  saveExtras();
  return tab;
}

async function closeTab(tab) {
  const position = tabs.indexOf(tab);
  tabs.splice(position, 1);
  tab.wrapper.remove();
  tab.panel.remove();
  if (tab.mounted) (await tab.mounted).dispose?.();
  saveExtras();
  const next = tabs[Math.max(0, position - 1)];
  if (next) {
    next.button.focus();
    select(next);
  }
}

const DEFAULT_TITLES = { files: "Files", chat: "Chat", claude: "Claude Code", command: "Command" };
data.blueprint.tabs.forEach((t, index) => addTab({ title: t.title || DEFAULT_TITLES[t.kind] || "Terminal", kind: t.kind, index }));
try {
  const saved = JSON.parse(sessionStorage.getItem(EXTRA_KEY) || "null");
  if (saved && !locked) {
    extraCount = saved.next || 0;
    saved.extras.forEach((id) => addTerminal(id));
  }
} catch {
  /* nothing saved */
}
const addButton = document.getElementById("add-terminal");
if (addButton) {
  addButton.addEventListener("click", () => {
    const tab = addTerminal();
    tab.button.focus();
    select(tab);
  });
}

function startTabs() {
  if (workspace.status !== "running" || tabs.some((t) => t.mounted)) return;
  const remembered = Number(sessionStorage.getItem(`enclave.tab.${workspace.id}`));
  select(tabs.find((t) => Number(t.id.split("-")[1]) === remembered) || tabs[0]);
}

function showWaiting() {
  // While the workspace does not run there is nothing to attach to: say so over the
  // tools (open terminals stay underneath and reconnect once it runs again).
  if (workspace.status === "running") return;
  let notice = panels.querySelector(":scope > .waiting");
  if (!notice) {
    notice = el("div", { class: "waiting", role: "status" });
    panels.append(notice);
  }
  const messages = {
    deploying: "The workspace is starting. Your tools open here as soon as it runs.",
    stopped: "The workspace is stopped. Start it to open your tools.",
    stopping: "The workspace is stopping.",
    error: workspace.error ? `The workspace failed: ${workspace.error}` : "The workspace failed to start.",
    deleting: "The workspace is being deleted.",
  };
  notice.replaceChildren(el("p", { text: messages[workspace.status] || "The workspace is not running." }));
  if (workspace.status === "stopped" || workspace.status === "error") {
    notice.append(el("button", { type: "button", class: "primary", text: "Start workspace", onclick: () => operate("start") }));
  }
  if (workspace.status === "error") {
    notice.append(" ", el("button", { type: "button", class: "ghost", text: "Show the logs", onclick: () => logs.open() }));
  }
}

// --- preview, logs, live state -------------------------------------------------------------

const preview = data.blueprint.preview ? new PreviewPanel(data, () => operate("start")) : null;
const logs = new LogsDrawer(workspace.id);

function update(next) {
  const was = workspace.status;
  workspace = next;
  renderBar();
  if (preview) preview.update(workspace);
  if (workspace.status === "running") {
    logs.resume();
    panels.querySelector(":scope > .waiting")?.remove();
    startTabs();
    if (was !== "running") {
      // A restart gave us new shells: reconnect the open terminals.
      for (const t of tabs) t.mounted?.then((m) => m.reconnect?.());
    }
  } else {
    showWaiting();
  }
}

connectEvents({
  onSnapshot(list) {
    const mine = list.find((w) => w.id === workspace.id);
    if (mine) update(mine);
    else gone();
  },
  onWorkspace(event, changed) {
    if (changed.id !== workspace.id) return;
    if (event === "deleted") gone();
    else update(changed);
  },
  onState(state) {
    liveState.textContent = state === "offline" ? "Live updates paused — reconnecting…" : "";
  },
});

function gone() {
  document.body.classList.add("workspace-gone");
  toast("This workspace was deleted.", "error");
  setTimeout(() => window.location.assign(data.urls.dashboard), 2500);
}

renderBar();
update(workspace);
