"""Create the `local` cluster and the `demo` blueprint that `make run` launches.

The blueprint is created once: an admin's later edits are kept on every `make run`.
`--reset` puts the demo definition back (through the audited blueprint service).
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
            demo = Blueprint.objects.filter(key="demo").first()
            if demo is None:
                blueprint_save(
                    blueprint=Blueprint(key="demo"), actor=None, fields={**DEMO, "cluster": cluster}
                )
                self.stdout.write("Created blueprint 'demo'.")
            elif reset:
                blueprint_save(blueprint=demo, actor=None, fields={**DEMO, "cluster": cluster})
                self.stdout.write("Restored blueprint 'demo' to its original definition.")
            else:
                self.stdout.write("Blueprint 'demo' exists; kept as it is (--reset restores it).")
        if token_file is not None and token:
            write_private(token_file, token)
        elif token_file is not None:
            token_file.chmod(0o600)  # a file an older version wrote with a looser mode


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
