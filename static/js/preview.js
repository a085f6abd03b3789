// The editor's preview panel: the app on its own origin in an iframe, driven through the
// preview bridge (relay/consumers/preview/bridge.js) with postMessage — the page cannot
// read a cross-origin frame, so the bridge reports every navigation (SPA routes too) and
// carries out back / forward / reload / navigate.
//
// Each load of the frame, and each "open in a new tab", redeems a fresh single-use
// ticket: a ticket is spent once its link is followed.

import { api } from "./api.js";

const WIDTHS = { desktop: "100%", tablet: "768px", mobile: "390px" };
const WAITING = new Set(["upstream_unavailable", "upstream_timeout", "cluster_unavailable"]);

export class PreviewPanel {
  constructor(data, start) {
    this.data = data;
    this.workspace = data.workspace;
    this.hiddenPort = data.chat ? data.chat.port : null; // the assistant shows in its own tab
    this.api = `${data.urls.api}/preview-ticket`;
    this.frame = document.getElementById("preview-frame");
    this.stage = document.getElementById("preview-stage");
    this.port = document.getElementById("preview-port");
    this.path = document.getElementById("preview-path");
    this.state = document.getElementById("preview-state");
    this.autoRefresh = document.getElementById("auto-refresh");
    this.currentPath = sessionStorage.getItem(this.key("path")) || "/";
    this.timer = null;
    this.loaded = false;
    this.loading = false;
    this.lastError = null;

    for (const p of this.appPorts()) {
      this.port.append(new Option(p.name ? `${p.name} (${p.port})` : String(p.port), String(p.port)));
    }
    const savedPort = sessionStorage.getItem(this.key("port"));
    if (savedPort && this.appPorts().some((p) => String(p.port) === savedPort)) this.port.value = savedPort;
    this.path.value = this.currentPath;

    document.getElementById("preview-back").addEventListener("click", () => this.send({ type: "back" }));
    document.getElementById("preview-forward").addEventListener("click", () => this.send({ type: "forward" }));
    document.getElementById("preview-reload").addEventListener("click", () => this.reload());
    document.getElementById("preview-open").addEventListener("click", () => this.openInNewTab());
    document.getElementById("preview-state-start").addEventListener("click", start);
    this.port.addEventListener("change", () => {
      sessionStorage.setItem(this.key("port"), this.port.value);
      this.currentPath = "/";
      this.load("/");
    });
    document.getElementById("path-form").addEventListener("submit", (event) => {
      event.preventDefault();
      let value = this.path.value.trim() || "/";
      if (!value.startsWith("/")) value = `/${value}`;
      if (value.startsWith("//")) value = `/${value.replace(/^\/+/, "")}`;
      this.navigate(value);
    });
    for (const button of document.querySelectorAll("[data-width]")) {
      button.addEventListener("click", () => this.setWidth(button.dataset.width));
    }
    this.setWidth(localStorage.getItem("enclave.preview.width") || "desktop");
    this.autoRefresh.addEventListener("change", () => this.schedule());
    window.addEventListener("message", (event) => this.receive(event));
  }

  appPorts() {
    return this.workspace.ports.filter((p) => p.port !== this.hiddenPort);
  }

  key(name) {
    return `enclave.preview.${this.workspace.id}.${name}`;
  }

  origin() {
    return this.data.preview_origins[this.port.value];
  }

  setWidth(name) {
    if (!(name in WIDTHS)) name = "desktop";
    this.stage.dataset.width = name;
    this.frame.style.width = WIDTHS[name];
    for (const button of document.querySelectorAll("[data-width]")) {
      button.setAttribute("aria-pressed", String(button.dataset.width === name));
    }
    localStorage.setItem("enclave.preview.width", name);
  }

  showState(title, text = "", { startButton = false, banner = false } = {}) {
    this.state.hidden = false;
    this.state.classList.toggle("banner", banner);
    document.getElementById("preview-state-title").textContent = title;
    document.getElementById("preview-state-text").textContent = text;
    document.getElementById("preview-state-start").hidden = !startButton;
  }

  hideState() {
    this.state.hidden = true;
  }

  // The bar's controls act on a running app only.
  setControls(enabled) {
    for (const control of document.querySelectorAll(".preview-bar button, .preview-bar input, .preview-bar select")) {
      control.disabled = !enabled;
    }
  }

  update(workspace) {
    this.workspace = workspace;
    const ports = this.appPorts();
    this.setControls(workspace.status === "running" && ports.length > 0);
    if (!ports.length) {
      this.frame.removeAttribute("src");
      this.loaded = false;
      return this.showState("Nothing to preview", "This workspace's blueprint declares no port to preview.");
    }
    const s = workspace.status;
    if (s === "running") {
      if (!this.loaded && !this.loading) this.load(this.currentPath);
      return;
    }
    this.loaded = false;
    this.frame.removeAttribute("src");
    clearTimeout(this.timer);
    if (s === "stopped") this.showState("The workspace is stopped", "Start it to see your app.", { startButton: true });
    else if (s === "error") this.showState("The workspace failed", workspace.error || "Check the logs, then start it again.", { startButton: true });
    else if (s === "deploying") this.showState("Starting your workspace…", "The preview appears as soon as it runs.");
    else this.showState(`The workspace is ${s}`);
  }

  async ticket(path) {
    const body = await api("POST", this.api, { port: Number(this.port.value), path });
    return body.url;
  }

  async load(path) {
    if (this.workspace.status !== "running" || !this.port.value) return;
    this.loading = true;
    try {
      const url = await this.ticket(path);
      this.frame.src = url;
      this.loaded = true;
      this.hideState();
    } catch (error) {
      this.showState("The preview could not be opened", error.message);
    } finally {
      this.loading = false;
    }
    this.schedule();
  }

  // While the frame runs the bridge, navigation needs no new ticket.
  send(message) {
    if (!this.loaded || !this.frame.contentWindow) return;
    this.frame.contentWindow.postMessage({ source: "enclave-portal", ...message }, this.origin());
  }

  navigate(path) {
    this.currentPath = path;
    if (this.loaded && this.bridged) this.send({ type: "navigate", path });
    else this.load(path);
  }

  reload() {
    if (this.loaded && this.bridged) this.send({ type: "reload" });
    else this.load(this.currentPath);
  }

  fileSaved() {
    // A saved file is a natural moment to see the change, when auto-refresh is on.
    if (this.refreshEvery()) this.reload();
  }

  refreshEvery() {
    return Number(this.autoRefresh.value) || 0;
  }

  schedule() {
    clearTimeout(this.timer);
    const every = this.refreshEvery();
    if (!every || this.workspace.status !== "running") return;
    this.timer = setTimeout(() => {
      this.reload();
      this.schedule();
    }, every * 1000);
  }

  async openInNewTab() {
    // Open the window inside the click (popup blockers), then send it to a fresh ticket.
    const opened = window.open("about:blank", "_blank");
    if (opened) opened.opener = null;
    try {
      const url = await this.ticket(this.currentPath);
      if (opened) opened.location.replace(url);
      else window.open(url, "_blank", "noopener");
    } catch (error) {
      if (opened) opened.close();
      this.showState("The preview could not be opened", error.message);
    }
  }

  receive(event) {
    if (event.source !== this.frame.contentWindow || event.origin !== this.origin()) return;
    const message = event.data;
    if (!message || message.source !== "enclave-preview") return;
    this.bridged = true;
    if (message.type === "location" && typeof message.path === "string") {
      this.currentPath = message.path;
      sessionStorage.setItem(this.key("path"), message.path);
      if (document.activeElement !== this.path) this.path.value = message.path;
      this.lastError = null;
      this.hideState();
    } else if (message.type === "error") {
      this.lastError = message;
      if (message.code === "workspace_not_running") {
        this.showState("The workspace is not running", "Start it to see your app.", { startButton: true });
      } else if (WAITING.has(message.code)) {
        const retry = message.retry_in ? ` Retrying in ${message.retry_in} s…` : " Retrying…";
        this.showState(
          `Your app is not answering on port ${this.port.value} yet`,
          `${message.detail || "Nothing answers yet."}${retry}`,
          { banner: true },
        );
      } else {
        this.hideState();
      }
    }
  }
}
