"""Create the `local` cluster and the demo blueprints that `make run` offers.

`demo` is a tiny static site; `ai-builder` is the AI app builder: a starter web app whose
dev server reloads the preview on every change, with the Chat, Claude Code, Terminal and
Files tabs. Its AI providers are left for an admin to fill in the console.

Each blueprint is created once: an admin's later edits are kept on every `make run`.
`--reset` puts the definitions back (through the audited blueprint service).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import transaction

from blueprints.choices import BlueprintState
from blueprints.models import Blueprint
from blueprints.services import blueprint_save
from clusters.models import Cluster
from clusters.services import cluster_create, cluster_rotate_token

DEMO_SETUP = r"""cat > index.html <<'HTML'
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Demo app</title>
<style>body{font:17px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto}</style>
</head>
<body>
  <h1>Hello from your Enclave workspace</h1>
  <p>Open the <strong>Files</strong> tab, edit <code>index.html</code>, save, and reload
  the preview. Or change it from the terminal.</p>
  <p><a href="about.html">About this app</a></p>
</body>
</html>
HTML
cat > about.html <<'HTML'
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>About</title></head>
<body><h1>About</h1><p>A static site served by <code>python3 -m http.server</code>.</p>
<p><a href="index.html">Back home</a></p></body>
</html>
HTML
"""
DEMO_START = 'exec python3 -m http.server "$PORT" --bind 127.0.0.1'
DEMO = {
    "name": "Demo web app",
    "description": "A tiny static web site served on port 3000.",
    "icon": "🚀",
    "category": "Starters",
    "state": BlueprintState.ENABLED,
    "image": "python:3.11-slim",
    "start_command": DEMO_START,
    "setup_script": DEMO_SETUP,
    "ports": [{"port": 3000, "name": "app"}],
    "cpu": "1",
    "memory": "1Gi",
    "storage": "5Gi",
    "layout_tabs": [
        {"kind": "terminal", "title": "Terminal"},
        {"kind": "files", "title": "Files"},
    ],
}

AI_BUILDER_SETUP = r"""mkdir -p public
cat > public/index.html <<'HTML'
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>My app</title>
  <link rel="stylesheet" href="style.css">
</head>
<body>
  <main>
    <h1>Your app starts here</h1>
    <p>Ask the assistant in the <strong>Chat</strong> tab to build it, for example:
    <em>"Make this a page where my team can log expenses"</em>.</p>
    <p>Every change shows up here at once.</p>
    <button id="hello" type="button">Say hello</button>
    <p id="out" role="status"></p>
  </main>
  <script src="app.js"></script>
</body>
</html>
HTML
cat > public/style.css <<'CSS'
body { font: 17px/1.5 system-ui, sans-serif; margin: 0; background: #f6f7fb; color: #1d2330; }
main { max-width: 40rem; margin: 3rem auto; padding: 2rem; background: #fff; border-radius: 12px;
       box-shadow: 0 1px 3px rgba(0, 0, 0, .08); }
button { font: inherit; padding: .5rem 1rem; border-radius: 8px; border: 0; background: #4f46e5;
         color: #fff; cursor: pointer; }
CSS
cat > public/app.js <<'JS'
document.getElementById("hello").addEventListener("click", () => {
  document.getElementById("out").textContent = "Hello! Now ask the assistant for your app.";
});
JS
cat > devserver.py <<'PY'
# Development server: serves public/ and reloads open pages when a file changes.
import functools, http.server, os, sys, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "public")
SNIPPET = (b"<script>(() => { const s = new EventSource('/__reload');"
           b" s.onmessage = () => location.reload(); })();</script>")


def stamp():
    latest = 0.0
    for folder, _, files in os.walk(ROOT):
        for name in files:
            try:
                latest = max(latest, os.stat(os.path.join(folder, name)).st_mtime)
            except OSError:
                pass
    return latest


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/__reload":
            return self.reload_stream()
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        if path.endswith(".html") and os.path.isfile(path):
            with open(path, "rb") as handle:
                body = handle.read().replace(b"</body>", SNIPPET + b"</body>")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return None
        return super().do_GET()

    def reload_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = stamp()
        try:
            while True:
                time.sleep(0.5)
                now = stamp()
                if now != seen:
                    seen = now
                    self.wfile.write(b"data: reload\n\n")
                else:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


if __name__ == "__main__":
    port = int(sys.argv[1])
    handler = functools.partial(Handler, directory=ROOT)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    print(f"Dev server on port {port}: edits under public/ reload the preview.", flush=True)
    server.serve_forever()
PY
"""
AI_BUILDER = {
    "name": "AI app builder",
    "description": "Describe the app you want to the AI assistant and watch it being built: "
    "a starter web app whose preview reloads on every change.",
    "icon": "✨",
    "category": "AI",
    "state": BlueprintState.ENABLED,
    "image": "ghcr.io/enclave/workspace:latest",
    "start_command": 'exec python3 devserver.py "$PORT"',
    "setup_script": AI_BUILDER_SETUP,
    "ports": [{"port": 5173, "name": "app"}],
    "cpu": "2",
    "memory": "2Gi",
    "storage": "5Gi",
    "chat_system_prompt": (
        "You help a builder, who may not be a developer, make a small web app. The app "
        "lives in public/ (index.html, style.css, app.js) and is served by devserver.py, "
        "which reloads the preview on every change: edit those files, keep the app "
        "dependency-free, and explain what you changed in one or two plain sentences."
    ),
    "layout_tabs": [
        {"kind": "chat", "title": "Chat"},
        {"kind": "claude", "title": "Claude Code"},
        {"kind": "terminal", "title": "Terminal"},
        {"kind": "files", "title": "Files"},
    ],
}
SEEDED = {"demo": DEMO, "ai-builder": AI_BUILDER}


class Command(BaseCommand):
    help = (
        "Create the `local` cluster (printing its agent token) and the `demo` blueprint: a "
        "small web app on declared port 3000 named `app`. Safe to run again: an existing "
        "demo blueprint is left as the admins edited it unless --reset is given."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Restore the demo blueprint's definition (audited as a blueprint update).",
        )
        parser.add_argument(
            "--token-file",
            type=Path,
            help="Also write the agent token here (mode 0600 from its first byte, replaced "
            "atomically). When the cluster already exists and this file is missing, the token "
            "is rotated to fill it (which ends the agent's live tunnel).",
        )

    def handle(self, *args, token_file: Path | None = None, reset: bool = False, **options) -> None:
        with transaction.atomic():
            cluster = Cluster.objects.filter(name="local").first()
            token = None
            if cluster is None:
                cluster, token = cluster_create(
                    name="local", description="Agent on this host (local runtime)", actor=None
                )
                self.stdout.write(f"Created cluster 'local'. Agent token (shown once): {token}")
            elif token_file is not None and not token_file.exists():
                token = cluster_rotate_token(cluster=cluster, actor=None)
                self.stdout.write("Rotated the 'local' cluster's agent token into the token file.")
            for key, definition in SEEDED.items():
                self._seed(key, {**definition, "cluster": cluster}, reset=reset)
        if token_file is not None and token:
            write_private(token_file, token)
        elif token_file is not None:
            token_file.chmod(0o600)  # a file an older version wrote with a looser mode

    def _seed(self, key: str, fields: dict, *, reset: bool) -> None:
        existing = Blueprint.objects.filter(key=key).first()
        if existing is None:
            blueprint_save(blueprint=Blueprint(key=key), actor=None, fields=fields)
            self.stdout.write(f"Created blueprint '{key}'.")
        elif reset:
            blueprint_save(blueprint=existing, actor=None, fields=fields)
            self.stdout.write(f"Restored blueprint '{key}' to its original definition.")
        else:
            self.stdout.write(f"Blueprint '{key}' exists; kept as it is (--reset restores it).")


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically, readable by this user only from the first
    byte: written to a temporary file created 0600 beside it (`mkstemp`, which opens with
    O_EXCL), flushed to disk, then renamed over `path`. A crash leaves the old file or
    the new one, never a partial or world-readable token."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
