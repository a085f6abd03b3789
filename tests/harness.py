"""Real processes for integration tests and benchmarks: a portal (the production launcher,
or daphne where a test compares servers), an agent.

Each `Portal` gets its own SQLite file (or shares one with another portal), its own
port and — when `REDIS_URL` is set — the real Redis channel layer. Everything is on
loopback and is stopped by the fixtures, whatever the test's outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from agent.affinity import format_cpus

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(var_dir)),
        "LANG": "C.UTF-8",
        "DEBUG": "true",
        "PORTAL_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "LOG_LEVEL": "INFO",
    }
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    env.update(extra)
    return env


def manage(var_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env or base_env(var_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Signal a child and reap it; kill it if it has not exited after 15 s."""
    if proc and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_workspaces(data_dir: Path) -> None:
    """End every workspace an agent with ``data_dir`` started (their process groups; a
    sandbox's whole tree goes with its first process)."""
    for path in (data_dir / "environments").glob("*/environment.json"):
        pid = json.loads(path.read_text()).get("pid")
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (requests.RequestException, OSError, ValueError, KeyError):
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


@dataclass
class Portal:
    """A portal process on a free loopback port: `python -m portal` (uvicorn, the production
    default) unless `server="daphne"`."""

    var_dir: Path
    port: int = field(default_factory=free_port)
    server: str = "uvicorn"
    proc: subprocess.Popen | None = None
    env_extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return base_env(self.var_dir, **{"PORTAL_URL": self.url, **self.env_extra})

    def prepare(self) -> None:
        """Migrate, create the admin and the demo data (idempotent)."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        manage(self.var_dir, "migrate", "--noinput", env=self.env)
        manage(self.var_dir, "ensure_admin", env=self.env)
        token_file = str(self.var_dir / "agent.token")
        manage(self.var_dir, "seed_demo", "--token-file", token_file, env=self.env)

    def start(self) -> Portal:
        if self.server == "uvicorn":  # the production launcher
            argv = [sys.executable, "-m", "portal", "--host", "127.0.0.1", "--port", str(self.port)]
        else:
            argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
            argv.append("portal.asgi:application")
        log = open(self.var_dir / f"portal-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        wait_until(lambda: requests.get(f"{self.url}/healthz", timeout=1).ok, what="portal health")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig)
        self.proc = None

    def token_for(self, email: str) -> str:
        return manage(self.var_dir, "issue_api_token", email, env=self.env).strip()

    @property
    def agent_token(self) -> str:
        return (self.var_dir / "agent.token").read_text().strip()

    def log(self) -> str:
        path = self.var_dir / f"portal-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Agent:
    """An agent process with the local runtime."""

    portal_url: str
    token: str
    data_dir: Path
    proc: subprocess.Popen | None = None
    args: list[str] = field(default_factory=list)
    """Extra command-line flags (e.g. ``--cpus``)."""

    def start(self) -> Agent:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # Each sandbox runs as a uid of its own, which passes through the directories
            # above the data dir (0755 on a real host; pytest makes its own 0700).
            temp = Path(tempfile.gettempdir())
            for parent in self.data_dir.parents:
                if parent == temp or temp not in parent.parents:
                    break
                parent.chmod(parent.stat().st_mode | 0o001)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(self.data_dir)),
            "LANG": "C.UTF-8",
            "ENCLAVE_AGENT_TOKEN": self.token,
        }
        log = open(self.data_dir / "agent.log", "ab")  # noqa: SIM115
        argv = [sys.executable, "-m", "agent", "--portal-url", self.portal_url]
        argv += ["--runtime", "local", "--data-dir", str(self.data_dir), *self.args]
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig)
        self.proc = None

    def kill_workspaces(self) -> None:
        """Test teardown: end every workspace process this agent started (process groups)."""
        kill_workspaces(self.data_dir)

    def environment(self, environment_id: str) -> dict:
        path = self.data_dir / "environments" / environment_id / "environment.json"
        return json.loads(path.read_text())

    def log(self) -> str:
        path = self.data_dir / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""


class _LoopbackSession(requests.Session):
    def prepare_request(self, request):
        # Browsers send Secure cookies to loopback over plain HTTP; Python's cookie jar
        # keeps them for HTTPS only, and requests copies them into a jar of its own.
        for cookie in self.cookies:
            cookie.secure = False
        return super().prepare_request(request)


def loopback_session() -> requests.Session:
    """A requests session for a loopback portal, whose cookies are `__Host-` cookies
    (Secure): it sends them back over http://127.0.0.1, as a browser does."""
    session = _LoopbackSession()
    session.trust_env = False
    return session


class Api:
    """A tiny API client with a personal token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base = f"{base_url}/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, f"{self.base}{path}", **kwargs)

    def workspace(self, workspace_id: str) -> dict:
        response = self("GET", f"/workspaces/{workspace_id}")
        response.raise_for_status()
        return response.json()

    def wait_status(self, workspace_id: str, status: str, timeout: float = 20) -> dict:
        return wait_until(
            lambda: (w := self.workspace(workspace_id))["status"] == status and w,
            timeout=timeout,
            what=f"workspace {workspace_id} {status}",
        )


@dataclass
class UvicornPortal(Portal):
    """A portal under uvicorn with an explicit WebSocket implementation (`--ws`)."""

    server: str = "uvicorn"
    ws: str = "websockets-sansio"

    def start(self) -> Portal:
        argv = [sys.executable, "-m", "portal", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--ws", self.ws]
        log = open(self.var_dir / f"portal-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        wait_until(lambda: requests.get(f"{self.url}/healthz", timeout=1).ok, what="portal health")
        return self


PLACEMENTS = ("partitioned", "shared")


def add_sandbox_argument(parser) -> None:
    """A benchmark's ``--sandbox on|off``: ``off`` passes ``--insecure-no-sandbox`` to the
    agent, to measure what the sandbox costs."""
    parser.add_argument(
        "--sandbox",
        choices=("on", "off"),
        default="on",
        help="on: the workspace in its bubblewrap sandbox (the default install); off: the "
        "agent with --insecure-no-sandbox, to measure what the sandbox costs",
    )


def parse_placements(text: str) -> list[str]:
    """A benchmark's ``--placements`` ("partitioned,shared"); ValueError on a name it
    does not know, or on "partitioned" where there are not two CPUs to split, rather
    than a table row labelled with a placement that did not happen."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in PLACEMENTS:
            raise ValueError(f"unknown placement {name!r} (choose from {', '.join(PLACEMENTS)})")
    if "partitioned" in names and len(os.sched_getaffinity(0)) < 2:
        raise ValueError("the partitioned placement needs at least 2 CPUs")
    if not names:
        raise ValueError("no placement given")
    return names


def partition(portal: Portal, placement: str) -> list[str]:
    """Place a benchmark's processes (`parse_placements` checked the name): for
    "partitioned" the portal gets the first CPU (`PORTAL_CPUS`) and the agent, with the
    workspaces it starts, the others — the agent flags to pass are returned; "shared"
    leaves every process to the scheduler (no flags)."""
    if placement != "partitioned":
        return []
    first, *rest = sorted(os.sched_getaffinity(0))
    portal.env_extra["PORTAL_CPUS"] = str(first)
    return ["--cpus", format_cpus(frozenset(rest))]


_SIGN_IN = """
import json
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from accounts.models import User
store = import_module(settings.SESSION_ENGINE).SessionStore
keys = {}
for email in json.loads(EMAILS):
    user = User.objects.filter(email=email).first() or User.objects.create_user(email)
    session = store()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    keys[email] = session.session_key
print("SESSIONS=" + json.dumps(keys))
"""


def sign_in(portal: Portal, emails: list[str]) -> dict[str, str]:
    """A browser session of each member (created as a builder if unknown): e-mail → the
    session key, the value of the portal's session cookie."""
    code = f"EMAILS = {json.dumps(json.dumps(emails))}\n{_SIGN_IN}"
    output = manage(portal.var_dir, "shell", "-c", code, env=portal.env)
    line = next(x for x in output.splitlines() if x.startswith("SESSIONS="))
    return json.loads(line.removeprefix("SESSIONS="))


def portal_db_rows(portal: Portal, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of a query on the portal's SQLite file (works while the portal is stopped)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(portal.var_dir / "portal.sqlite3", timeout=10)) as db:
        return db.execute(sql, params).fetchall()


# --- previews --------------------------------------------------------------------------------


def create_blueprint(api: Api, key: str, **fields) -> dict:
    """An enabled blueprint on the `local` cluster, created through the admin API."""
    body = {
        "key": key,
        "name": key.replace("-", " ").title(),
        "state": "enabled",
        "cluster": "local",
        "image": "python:3.11-slim",
        "ports": [{"port": 3000, "name": "app"}],
        **fields,
    }
    response = api("POST", "/admin/blueprints", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def setup_script_writing(filename: str, source: str) -> str:
    """A blueprint setup script that writes `source` to `filename` in the workspace."""
    assert "ENCLAVE_EOF" not in source
    return f"cat > {filename} <<'ENCLAVE_EOF'\n{source}\nENCLAVE_EOF\n"


class PreviewClient:
    """HTTP to a preview origin through the portal's loopback port.

    `*.localhost` names may not resolve outside browsers, so every request goes to
    127.0.0.1 with the preview `Host` header; the preview cookie is kept by hand.
    """

    def __init__(self, portal: Portal, host: str) -> None:
        self.portal = portal
        self.host = host
        self.cookie = ""
        self.session = requests.Session()
        self.session.trust_env = False

    @classmethod
    def from_ticket_url(cls, portal: Portal, url: str) -> PreviewClient:
        """Follow a preview ticket URL: redeem it and keep the cookie it sets."""
        parts = urlsplit(url)
        client = cls(portal, parts.netloc)
        response = client.get(f"{parts.path}?{parts.query}")
        assert response.status_code == 302, (response.status_code, response.text)
        client.cookie = response.headers["Set-Cookie"].split(";", 1)[0]
        return client

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Host": self.host, **kwargs.pop("headers", {})}
        if self.cookie:
            other = headers.pop("Cookie", "")
            headers["Cookie"] = "; ".join(c for c in (other, self.cookie) if c)
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        url = f"http://127.0.0.1:{self.portal.port}{path}"
        return self.session.request(method, url, headers=headers, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)


# --- members ---------------------------------------------------------------------------------

_SET_MEMBER = (
    "from accounts.models import User; from accounts.choices import Role; "
    "u = User.objects.filter(email={email!r}).first() or "
    "User.objects.create_user({email!r}, {password!r}); "
    "u.set_password({password!r}); u.role = Role.ADMIN if {admin!r} else Role.USER; u.save()"
)


def create_member(portal: Portal, email: str, password: str, *, admin: bool = False) -> None:
    """A member who signs in with `password` (a builder unless `admin`); an existing
    member of that e-mail gets the password and the role."""
    snippet = _SET_MEMBER.format(email=email, password=password, admin=admin)
    manage(portal.var_dir, "shell", "-c", snippet, env=portal.env)
