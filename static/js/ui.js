// Small pieces every page shares: status badges, times, dialogs, toasts.

export const STATUS_LABELS = {
  deploying: "Deploying",
  running: "Running",
  stopping: "Stopping",
  stopped: "Stopped",
  error: "Error",
  deleting: "Deleting",
};

export const PHASE_LABELS = {
  validating: "Validating",
  creating: "Creating",
  cloning: "Cloning the repository",
  configuring: "Configuring",
  deploying: "Starting the app",
  finalizing: "Finalizing",
};
export const PHASES = Object.keys(PHASE_LABELS);

export function setBadge(element, workspace) {
  const status = workspace.status || "unknown";
  element.dataset.status = status;
  let label = STATUS_LABELS[status] || status;
  if (status === "deploying" && workspace.phase) label = `${label} · ${PHASE_LABELS[workspace.phase] || workspace.phase}`;
  element.textContent = label;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [
  ["year", 31536000],
  ["month", 2592000],
  ["week", 604800],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
];

export function ago(iso) {
  if (!iso) return "";
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  if (Number.isNaN(seconds)) return "";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

export function elapsed(sinceMs) {
  const total = Math.max(0, Math.round((Date.now() - sinceMs) / 1000));
  const minutes = Math.floor(total / 60);
  return minutes ? `${minutes} min ${total % 60} s` : `${total} s`;
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

// A confirmation naming what will happen; resolves true when confirmed.
export function confirmDialog({ title, text, action }) {
  const dialog = document.getElementById("confirm-dialog");
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-text").textContent = text;
  dialog.querySelector("#confirm-ok").textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// Deleting a workspace: the dialog names it and says what goes with it.
export function confirmDelete(workspace) {
  return confirmDialog({
    title: `Delete ${workspace.name}?`,
    text: `${workspace.name} and everything in it — its files and snapshots — will be deleted. This cannot be undone.`,
    action: `Delete ${workspace.name}`,
  });
}

let toastTimer = null;
export function toast(message, level = "info") {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = message;
  box.dataset.level = level;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.hidden = true), level === "error" ? 8000 : 4000);
}

export function wireCloseButtons(dialog) {
  for (const button of dialog.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => dialog.close("cancel"));
  }
}
