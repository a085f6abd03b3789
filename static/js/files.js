// The Files tab: a tree of the workspace home and a Monaco editor to open, edit and save
// text files through /api/v1/workspaces/<id>/files (the agent reads and writes them; the
// portal only relays). Saves carry the version that was opened, so a file changed
// meanwhile (by a terminal, the AI, another tab) is never overwritten silently.

import { api } from "./api.js";
import { confirmDialog, el, toast } from "./ui.js";

let monacoReady = null;

function loadMonaco(base) {
  monacoReady ||= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = `${base}/loader.js`;
    script.onload = () => {
      window.require.config({ paths: { vs: base } });
      window.require(["vs/editor/editor.main"], () => resolve(window.monaco), reject);
    };
    script.onerror = () => reject(new Error("the editor could not be loaded"));
    document.head.append(script);
  });
  return monacoReady;
}

const LANGUAGES = {
  js: "javascript", mjs: "javascript", cjs: "javascript", jsx: "javascript", ts: "typescript", tsx: "typescript",
  py: "python", html: "html", htm: "html", css: "css", scss: "scss", json: "json", md: "markdown",
  yml: "yaml", yaml: "yaml", sh: "shell", go: "go", rs: "rust", java: "java", rb: "ruby", php: "php",
  sql: "sql", xml: "xml", svg: "xml", toml: "ini", ini: "ini", dockerfile: "dockerfile", vue: "html",
};

function language(path) {
  const name = path.split("/").pop().toLowerCase();
  if (name === "dockerfile") return "dockerfile";
  return LANGUAGES[name.split(".").pop()] || "plaintext";
}

const dark = () => window.matchMedia("(prefers-color-scheme: dark)").matches;

function promptDialog({ title, label, value, action }) {
  const dialog = document.getElementById("prompt-dialog");
  const input = document.getElementById("prompt-input");
  dialog.querySelector("#prompt-title").textContent = title;
  dialog.querySelector("#prompt-label").textContent = label;
  dialog.querySelector("#prompt-ok").textContent = action;
  input.value = value || "";
  return new Promise((resolve) => {
    const form = document.getElementById("prompt-form");
    const done = (result) => {
      form.removeEventListener("submit", submit);
      dialog.querySelector("[data-close]").removeEventListener("click", cancel);
      dialog.close();
      resolve(result);
    };
    const submit = (event) => {
      event.preventDefault();
      done(input.value.trim() || null);
    };
    const cancel = () => done(null);
    form.addEventListener("submit", submit);
    dialog.querySelector("[data-close]").addEventListener("click", cancel);
    dialog.addEventListener("cancel", cancel, { once: true });
    dialog.showModal();
    input.select();
  });
}

export function mountFiles(panel, { api: base, monaco: monacoBase, onSaved = () => {} }) {
  const view = document.getElementById("files-panel").content.firstElementChild.cloneNode(true);
  panel.append(view);
  const tree = view.querySelector("[data-role=tree]");
  const pathLabel = view.querySelector("[data-role=path]");
  const state = view.querySelector("[data-role=state]");
  const host = view.querySelector("[data-role=host]");
  const saveButton = view.querySelector("[data-action=save]");
  const renameButton = view.querySelector("[data-action=rename]");
  const deleteButton = view.querySelector("[data-action=delete]");
  const expanded = new Set([""]);
  let editor = null;
  let current = null; // { path, version, saved }
  let busy = false;

  const setState = (text, level = "info") => {
    state.textContent = text;
    state.dataset.level = level;
  };
  const dirty = () => Boolean(current && editor && editor.getValue() !== current.saved);
  const refreshButtons = () => {
    saveButton.disabled = !current || busy || current.binary;
    renameButton.disabled = !current || busy;
    deleteButton.disabled = !current || busy;
    if (current && !current.binary) setState(dirty() ? "Unsaved changes" : "Saved");
  };

  async function listing(path) {
    const body = await api("GET", `${base}?${new URLSearchParams({ path })}`);
    return body;
  }

  async function renderDirectory(path, container, depth) {
    let body;
    try {
      body = await listing(path);
    } catch (error) {
      container.replaceChildren(el("li", { class: "tree-error", role: "none", text: error.message }));
      return;
    }
    const items = body.entries.map((entry) => {
      const isDir = entry.type === "dir";
      const item = el("li", { role: "treeitem", "aria-level": String(depth + 1), "data-path": entry.path, "data-type": entry.type });
      const label = el("button", {
        type: "button",
        class: `tree-entry ${entry.type}${entry.name.startsWith(".") ? " dotfile" : ""}`,
        style: `padding-left: ${0.5 + depth * 0.9}rem`,
        text: `${isDir ? (expanded.has(entry.path) ? "▾ " : "▸ ") : ""}${entry.name}`,
        title: entry.path,
      });
      item.append(label);
      if (isDir) {
        item.setAttribute("aria-expanded", String(expanded.has(entry.path)));
        const children = el("ul", { role: "group" });
        item.append(children);
        if (expanded.has(entry.path)) renderDirectory(entry.path, children, depth + 1);
        label.addEventListener("click", () => {
          if (expanded.has(entry.path)) {
            expanded.delete(entry.path);
            children.replaceChildren();
          } else {
            expanded.add(entry.path);
            renderDirectory(entry.path, children, depth + 1);
          }
          item.setAttribute("aria-expanded", String(expanded.has(entry.path)));
          label.textContent = `${expanded.has(entry.path) ? "▾ " : "▸ "}${entry.name}`;
        });
      } else if (entry.type === "file") {
        label.addEventListener("click", () => open(entry.path));
        if (current && current.path === entry.path) label.setAttribute("aria-current", "true");
      } else {
        label.disabled = true;
        label.title = `${entry.path} is a link`;
      }
      return item;
    });
    if (body.truncated) items.push(el("li", { role: "none", class: "muted tree-note", text: "More files are not shown." }));
    if (!items.length && depth === 0) items.push(el("li", { role: "none", class: "muted tree-note", text: "No files yet." }));
    container.replaceChildren(...items);
  }

  const refresh = () => renderDirectory("", tree, 0);

  async function ensureEditor() {
    if (editor) return editor;
    const monaco = await loadMonaco(monacoBase);
    editor = monaco.editor.create(host, {
      value: "",
      automaticLayout: true,
      minimap: { enabled: false },
      scrollBeyondLastLine: false,
      wordWrap: "on",
      fontSize: 14,
      theme: dark() ? "vs-dark" : "vs",
      ariaLabel: "File editor",
    });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => monaco.editor.setTheme(dark() ? "vs-dark" : "vs"));
    editor.onDidChangeModelContent(refreshButtons);
    editor.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyCode.KeyS, () => save());
    return editor;
  }

  async function open(path) {
    if (dirty()) {
      const ok = await confirmDialog({ title: "Discard your changes?", text: `${current.path} has unsaved changes.`, action: "Discard changes" });
      if (!ok) return;
    }
    setState("Opening…");
    let body;
    try {
      body = await api("GET", `${base}/content?${new URLSearchParams({ path })}`);
    } catch (error) {
      return setState(error.message, "error");
    }
    current = { path: body.path, version: body.version, saved: body.content ?? "", binary: body.binary };
    pathLabel.textContent = body.path;
    for (const label of tree.querySelectorAll("[aria-current]")) label.removeAttribute("aria-current");
    tree.querySelector(`[data-path="${CSS.escape(body.path)}"] > button`)?.setAttribute("aria-current", "true");
    const ed = await ensureEditor();
    const monaco = window.monaco;
    const model = monaco.editor.createModel(current.saved, language(body.path));
    const old = ed.getModel();
    ed.setModel(model);
    old?.dispose();
    ed.updateOptions({ readOnly: body.binary });
    if (body.binary) {
      ed.setValue("");
      setState("This is a binary file: it cannot be edited here.", "error");
    }
    refreshButtons();
    ed.focus();
  }

  async function save({ overwrite = false } = {}) {
    if (!current || current.binary || busy) return;
    busy = true;
    refreshButtons();
    setState("Saving…");
    const content = editor.getValue();
    try {
      const body = await api("PUT", `${base}/content`, {
        path: current.path,
        content,
        ...(overwrite ? {} : { base_version: current.version }),
      });
      current.version = body.version;
      current.saved = content;
      busy = false;
      refreshButtons();
      onSaved(current.path);
    } catch (error) {
      busy = false;
      refreshButtons();
      if (error.code === "file_conflict") {
        const ok = await confirmDialog({
          title: "The file changed since you opened it",
          text: `${current.path} was changed elsewhere (a terminal, the AI or another tab). Overwrite it with your version?`,
          action: "Overwrite",
        });
        if (ok) return save({ overwrite: true });
        return setState("Not saved: the file changed elsewhere.", "error");
      }
      setState(error.message, "error");
    }
  }

  async function createFile() {
    const path = await promptDialog({ title: "New file", label: "Path in your workspace", value: "", action: "Create" });
    if (!path) return;
    try {
      await api("PUT", `${base}/content`, { path, content: "", base_version: "" }); // create only
      const parts = path.split("/");
      for (let i = 1; i < parts.length; i++) expanded.add(parts.slice(0, i).join("/"));
      await refresh();
      await open(path);
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function renameFile() {
    if (!current) return;
    const to = await promptDialog({ title: `Rename ${current.path}`, label: "New path", value: current.path, action: "Rename" });
    if (!to || to === current.path) return;
    try {
      await api("POST", `${base}/rename`, { from: current.path, to });
      current.path = to;
      pathLabel.textContent = to;
      await refresh();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function deleteFile() {
    if (!current) return;
    const ok = await confirmDialog({ title: `Delete ${current.path}?`, text: "The file is removed from your workspace.", action: "Delete file" });
    if (!ok) return;
    try {
      await api("DELETE", `${base}?${new URLSearchParams({ path: current.path })}`);
      current = null;
      editor?.setValue("");
      pathLabel.textContent = "Open a file on the left.";
      setState("");
      refreshButtons();
      await refresh();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  saveButton.addEventListener("click", () => save());
  renameButton.addEventListener("click", renameFile);
  deleteButton.addEventListener("click", deleteFile);
  view.querySelector("[data-action=new-file]").addEventListener("click", createFile);
  view.querySelector("[data-action=refresh]").addEventListener("click", refresh);
  window.addEventListener("beforeunload", (event) => {
    if (dirty()) event.preventDefault();
  });
  refresh();
  refreshButtons();
  return {
    focus: () => (editor ? editor.focus() : tree.querySelector("button")?.focus()),
    fit: () => editor?.layout(),
    reconnect: refresh,
  };
}
