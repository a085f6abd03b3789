// The builder's dashboard: their workspaces kept current over /ws/events/, search and
// tag filters, the everyday actions, and the launch dialog that follows provisioning
// live and opens the editor by itself. No polling: the only timer ticks the elapsed
// time shown while a launch runs.

import { api } from "./api.js";
import { connectEvents } from "./events.js";
import { PHASES, PHASE_LABELS, ago, confirmDelete, el, elapsed, setBadge, toast, wireCloseButtons } from "./ui.js";

const data = JSON.parse(document.getElementById("dashboard-data").textContent);
const me = data.me.email.toLowerCase();
const workspaces = new Map(data.workspaces.map((w) => [w.id, w]));
const rows = new Map();
let knownTags = new Set(data.tags);
let activeTag = "";
let query = "";

const list = document.getElementById("workspace-list");
const rowTemplate = document.getElementById("workspace-row");
const section = document.getElementById("my-workspaces");
const welcome = document.getElementById("welcome");
const quota = document.getElementById("quota");
const filters = document.getElementById("tag-filters");
const noMatch = document.getElementById("no-match");
const search = document.getElementById("workspace-search");
const liveNotice = document.getElementById("live-notice");
const unreachableNotice = document.getElementById("unreachable-notice");

const editorUrl = (id) => data.urls.editor.replace("__id__", encodeURIComponent(id));
const workspaceUrl = (id, suffix = "") => `${data.urls.api}/${encodeURIComponent(id)}${suffix}`;
const blueprintName = (key) => data.blueprints[key] || key;
const isMine = (w) => (w.owner_email || "").toLowerCase() === me;
const running = () => [...workspaces.values()].filter((w) => w.status === "running" || w.status === "deploying");

// --- the list ------------------------------------------------------------------------------

function actionButton(label, workspace, handler, style = "ghost") {
  return el("button", {
    type: "button",
    class: style,
    "aria-label": `${label} ${workspace.name}`,
    text: label,
    onclick: () => handler(workspace),
  });
}

function renderRow(workspace) {
  let row = rows.get(workspace.id);
  if (!row) {
    row = rowTemplate.content.firstElementChild.cloneNode(true);
    row.dataset.workspace = workspace.id;
    rows.set(workspace.id, row);
  }
  const field = (name) => row.querySelector(`[data-field=${name}]`);
  const open = field("open");
  open.textContent = workspace.name;
  open.href = editorUrl(workspace.id);
  open.setAttribute("aria-label", `Open ${workspace.name}`);
  field("blueprint").textContent = blueprintName(workspace.blueprint);
  field("created").textContent = workspace.created_at ? `created ${ago(workspace.created_at)}` : "";
  setBadge(field("status"), workspace);

  const tags = field("tags");
  tags.replaceChildren(
    ...workspace.tags.map((t) =>
      el("button", {
        type: "button",
        class: "chip tag",
        text: t,
        title: `Show the workspaces tagged ${t}`,
        onclick: () => {
          activeTag = t;
          render();
        },
      }),
    ),
  );

  const detail = field("detail");
  detail.replaceChildren();
  if (workspace.status === "error") {
    detail.append(
      el("span", { class: "error-text", text: workspace.error || "The workspace failed to start." }),
      " ",
      el("button", { type: "button", class: "link", text: "Show the logs", onclick: () => showFailure(workspace) }),
    );
  }
  if (data.not_isolated.includes(workspace.cluster)) {
    detail.append(el("span", { class: "badge danger", role: "note", text: "Not isolated: other workspaces on this cluster can reach this one" }));
  }

  const actions = [];
  const s = workspace.status;
  if (s !== "deleting") actions.push(el("a", { class: "button primary", href: editorUrl(workspace.id), text: "Open", "aria-hidden": "true", tabindex: "-1" }));
  if (s === "stopped") actions.push(actionButton("Start", workspace, (w) => operate(w, "start")));
  if (s === "error") actions.push(actionButton("Retry", workspace, (w) => operate(w, "restart")));
  if (s === "running" || s === "deploying") actions.push(actionButton("Stop", workspace, (w) => operate(w, "stop")));
  if (s === "running") actions.push(actionButton("Restart", workspace, (w) => operate(w, "restart")));
  if (s !== "deleting") {
    actions.push(actionButton("Tags", workspace, openTags));
    actions.push(actionButton("Delete", workspace, remove, "ghost danger-text"));
  }
  field("actions").replaceChildren(...actions);
  return row;
}

function matches(workspace) {
  if (activeTag && !workspace.tags.includes(activeTag)) return false;
  if (!query) return true;
  const haystack = [workspace.name, blueprintName(workspace.blueprint), ...workspace.tags].join(" ").toLowerCase();
  return haystack.includes(query);
}

function renderFilters() {
  const tags = new Set();
  for (const w of workspaces.values()) w.tags.forEach((t) => tags.add(t));
  if (activeTag && !tags.has(activeTag)) activeTag = "";
  const button = (label, value) =>
    el("button", {
      type: "button",
      class: "chip filter",
      "aria-pressed": String(activeTag === value),
      text: label,
      onclick: () => {
        activeTag = value;
        render();
      },
    });
  filters.replaceChildren(...(tags.size ? [button("All", ""), ...[...tags].sort().map((t) => button(t, t))] : []));
}

function render() {
  const sorted = [...workspaces.values()].sort((a, b) => (b.created_at || "").localeCompare(a.created_at || ""));
  const visible = sorted.filter(matches);
  const wanted = visible.map(renderRow);
  // Reorder in place so a focused button keeps its focus across updates.
  wanted.forEach((row, index) => {
    if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
  });
  while (list.children.length > wanted.length) list.lastElementChild.remove();
  for (const [id, row] of rows) {
    if (workspaces.has(id)) continue;
    rows.delete(id);
    row.remove();
  }
  noMatch.hidden = visible.length > 0 || workspaces.size === 0;
  section.hidden = workspaces.size === 0;
  welcome.hidden = workspaces.size > 0;
  const count = running().length;
  quota.textContent = `${count} of ${data.limit} running`;
  quota.dataset.full = String(count >= data.limit);
  renderFilters();
}

// --- live updates --------------------------------------------------------------------------

function upsert(workspace) {
  if (!isMine(workspace)) return;
  workspaces.set(workspace.id, workspace);
  render();
  launch.update(workspace);
}

function forget(workspace) {
  if (!workspaces.delete(workspace.id)) return;
  render();
  launch.deleted(workspace.id);
}

function showUnreachable(names) {
  unreachableNotice.hidden = names.length === 0;
  unreachableNotice.textContent = names.length
    ? `Not answering right now: ${names.join(", ")}. Your workspaces there are missing from this list until it is back.`
    : "";
}

showUnreachable(data.unreachable);
render();

connectEvents({
  onSnapshot(list_, unreachable) {
    workspaces.clear();
    for (const w of list_) if (isMine(w)) workspaces.set(w.id, w);
    showUnreachable(data.unreachable.filter((name) => unreachable.includes(name)));
    render();
    for (const w of workspaces.values()) launch.update(w);
  },
  onWorkspace(event, workspace) {
    if (event === "deleted") forget(workspace);
    else upsert(workspace);
  },
  onState(state) {
    liveNotice.hidden = state !== "offline";
    liveNotice.textContent = state === "offline" ? "Live updates are paused: reconnecting to the portal…" : "";
  },
});

// --- actions -------------------------------------------------------------------------------

async function operate(workspace, operation) {
  try {
    const updated = await api("POST", workspaceUrl(workspace.id, `/${operation}`));
    if (updated) upsert(updated);
  } catch (error) {
    if (error.code === "workspace_limit_reached") return showLimit();
    toast(error.message, "error");
  }
}

async function remove(workspace) {
  if (!(await confirmDelete(workspace))) return;
  try {
    await api("DELETE", workspaceUrl(workspace.id));
    toast(`${workspace.name} is being deleted.`);
  } catch (error) {
    toast(error.message, "error");
  }
}

// --- tags ----------------------------------------------------------------------------------

const tagsDialog = document.getElementById("tags-dialog");
const tagsInput = document.getElementById("tags-input");
const tagsError = document.getElementById("tags-error");
let tagsFor = null;
let draftTags = [];
wireCloseButtons(tagsDialog);

function renderDraftTags() {
  document.getElementById("tags-current").replaceChildren(
    ...draftTags.map((tag) =>
      el(
        "span",
        { class: "chip" },
        tag,
        el("button", {
          type: "button",
          class: "chip-remove",
          "aria-label": `Remove tag ${tag}`,
          text: "×",
          onclick: () => {
            draftTags = draftTags.filter((t) => t !== tag);
            renderDraftTags();
          },
        }),
      ),
    ),
  );
  document.getElementById("tags-known").replaceChildren(...[...knownTags].filter((t) => !draftTags.includes(t)).map((t) => el("option", { value: t })));
}

function openTags(workspace) {
  tagsFor = workspace;
  draftTags = [...workspace.tags];
  tagsDialog.querySelector("#tags-title").textContent = `Tags of ${workspace.name}`;
  tagsInput.value = "";
  tagsError.hidden = true;
  renderDraftTags();
  tagsDialog.showModal();
}

function addDraftTag() {
  const tag = tagsInput.value.trim().toLowerCase();
  if (!tag) return false;
  if (!draftTags.includes(tag)) draftTags.push(tag);
  tagsInput.value = "";
  renderDraftTags();
  return true;
}

document.getElementById("tags-add").addEventListener("click", () => {
  addDraftTag();
  tagsInput.focus();
});

tagsInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    addDraftTag();
  }
});

document.getElementById("tags-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  addDraftTag();
  try {
    const updated = await api("PUT", workspaceUrl(tagsFor.id, "/tags"), { tags: draftTags });
    draftTags.forEach((t) => knownTags.add(t));
    upsert(updated);
    tagsDialog.close();
  } catch (error) {
    tagsError.textContent = error.message;
    tagsError.hidden = false;
  }
});

// --- the limit -----------------------------------------------------------------------------

const limitDialog = document.getElementById("limit-dialog");

function showLimit() {
  const active = running();
  document.getElementById("limit-text").textContent =
    `Your organisation allows ${data.limit} running workspace${data.limit === 1 ? "" : "s"} per person, and ${active.length} of yours ${active.length === 1 ? "is" : "are"} running. Stop one to launch another.`;
  document.getElementById("limit-list").replaceChildren(
    ...active.map((w) =>
      el(
        "li",
        {},
        el("span", { text: w.name }),
        el("button", {
          type: "button",
          class: "ghost",
          "aria-label": `Stop ${w.name}`,
          text: "Stop",
          onclick: async () => {
            await operate(w, "stop");
            limitDialog.close();
            toast(`${w.name} is stopping. You can launch again.`);
          },
        }),
      ),
    ),
  );
  if (launchDialog.open) launchDialog.close();
  limitDialog.showModal();
}

// --- launching -----------------------------------------------------------------------------

const launchDialog = document.getElementById("launch-dialog");
const nameInput = document.getElementById("launch-name");
const launchError = document.getElementById("launch-error");
const phasesList = document.getElementById("launch-phases");
const elapsedLine = document.getElementById("launch-elapsed");
wireCloseButtons(launchDialog);

const launch = {
  blueprint: null,
  id: null,
  startedAt: 0,
  timer: null,

  open(form) {
    this.reset();
    this.blueprint = form.querySelector("input[name=blueprint]").value;
    launchDialog.querySelector("#launch-title").textContent = `Launch ${form.dataset.blueprintName}`;
    nameInput.value = form.dataset.defaultName;
    this.step("name");
    launchDialog.showModal();
    nameInput.select();
  },

  reset() {
    clearInterval(this.timer);
    this.id = null;
    launchError.hidden = true;
    document.getElementById("launch-submit").disabled = false;
  },

  step(name) {
    for (const part of launchDialog.querySelectorAll("[data-step]")) part.hidden = part.dataset.step !== name;
  },

  async submit() {
    if (running().length >= data.limit) return showLimit();
    const submit = document.getElementById("launch-submit");
    submit.disabled = true;
    launchError.hidden = true;
    try {
      const workspace = await api("POST", data.urls.api, { blueprint: this.blueprint, name: nameInput.value.trim(), exact_name: true });
      // Events about the new workspace may have overtaken this answer: keep the newer state.
      const known = workspaces.get(workspace.id);
      this.follow(known || workspace);
      if (known) this.update(known);
      else upsert(workspace);
    } catch (error) {
      submit.disabled = false;
      if (error.code === "workspace_limit_reached") return showLimit();
      launchError.textContent = error.message;
      launchError.hidden = false;
    }
  },

  follow(workspace) {
    this.id = workspace.id;
    this.startedAt = workspace.created_at ? Date.parse(workspace.created_at) : Date.now();
    if (Number.isNaN(this.startedAt) || this.startedAt > Date.now()) this.startedAt = Date.now();
    launchDialog.querySelector("#launch-title").textContent = `Launching ${workspace.name}`;
    document.getElementById("launch-failure").hidden = true;
    document.getElementById("launch-retry").hidden = true;
    document.getElementById("launch-delete").hidden = true;
    document.getElementById("launch-hide").textContent = "Continue in the background";
    this.step("progress");
    if (!launchDialog.open) launchDialog.showModal();
    this.tick();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), 1000);
    this.renderPhases(workspace);
  },

  tick() {
    elapsedLine.textContent = `Elapsed: ${elapsed(this.startedAt)}`;
  },

  renderPhases(workspace) {
    const phases = PHASES.filter((phase) => phase !== "cloning" || data.cloning.includes(workspace.blueprint));
    const done = workspace.status === "running";
    const at = phases.indexOf(workspace.phase || "validating");
    const current = done ? phases.length : Math.max(0, at < 0 ? PHASES.indexOf(workspace.phase) - 1 : at);
    phasesList.replaceChildren(
      ...phases.map((phase, index) => {
        const state = index < current ? "done" : index === current ? (workspace.status === "error" ? "failed" : "current") : "pending";
        return el("li", { class: `phase ${state}`, "aria-current": state === "current" ? "step" : null, text: PHASE_LABELS[phase] });
      }),
    );
  },

  update(workspace) {
    if (workspace.id !== this.id || !launchDialog.open) return;
    this.renderPhases(workspace);
    if (workspace.status === "running") {
      clearInterval(this.timer);
      elapsedLine.textContent = `Ready after ${elapsed(this.startedAt)}. Opening the editor…`;
      window.location.assign(editorUrl(workspace.id));
    } else if (workspace.status === "error") {
      clearInterval(this.timer);
      this.failed(workspace);
    }
  },

  deleted(id) {
    if (id === this.id && launchDialog.open) launchDialog.close();
  },

  async failed(workspace) {
    this.id = workspace.id;
    document.getElementById("launch-reason").textContent = workspace.error || "The workspace failed to start.";
    document.getElementById("launch-failure").hidden = false;
    document.getElementById("launch-retry").hidden = false;
    document.getElementById("launch-delete").hidden = false;
    document.getElementById("launch-hide").textContent = "Close";
    const logs = document.getElementById("launch-logs");
    logs.textContent = "Loading the last log lines…";
    try {
      const body = await api("GET", workspaceUrl(workspace.id, "/logs?tail=20"));
      logs.textContent = body.lines.length ? body.lines.join("\n") : "The start command wrote nothing.";
    } catch (error) {
      logs.textContent = `The logs could not be read: ${error.message}`;
    }
  },
};

function showFailure(workspace) {
  launch.reset();
  launchDialog.querySelector("#launch-title").textContent = `${workspace.name} failed`;
  launch.step("progress");
  launch.renderPhases(workspace);
  elapsedLine.textContent = "";
  launchDialog.showModal();
  launch.failed(workspace);
}

for (const form of document.querySelectorAll(".launch-form")) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    launch.open(form);
  });
}

document.getElementById("launch-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (launch.id === null) launch.submit();
});

document.getElementById("launch-retry").addEventListener("click", async () => {
  const workspace = workspaces.get(launch.id);
  if (!workspace) return;
  try {
    const updated = await api("POST", workspaceUrl(workspace.id, "/restart"));
    // Unless events already told the restart's progress, this answer is the news.
    const known = workspaces.get(workspace.id);
    if (known && known.status !== "error") {
      launch.follow(known);
      launch.update(known);
    } else {
      launch.follow(updated);
      upsert(updated);
    }
  } catch (error) {
    if (error.code === "workspace_limit_reached") return showLimit();
    toast(error.message, "error");
  }
});

document.getElementById("launch-delete").addEventListener("click", async () => {
  const workspace = workspaces.get(launch.id);
  if (!workspace) return;
  launchDialog.close();
  await remove(workspace);
});

launchDialog.addEventListener("close", () => clearInterval(launch.timer));

search.addEventListener("input", () => {
  query = search.value.trim().toLowerCase();
  render();
});
