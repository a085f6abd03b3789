"""The settings module, started in a subprocess under a controlled environment."""

import base64
import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
SETUP = "import django; django.setup()"
DUMP = (
    SETUP + "; import json; from django.conf import settings as s; print(json.dumps({"
    "'engine': s.DATABASES['default']['ENGINE'],"
    "'db_name': s.DATABASES['default']['NAME'],"
    "'db_host': s.DATABASES['default'].get('HOST'),"
    "'channels': s.CHANNEL_LAYERS['default']['BACKEND'],"
    "'channel_hosts': s.CHANNEL_LAYERS['default'].get('CONFIG', {}).get('hosts'),"
    "'cache': s.CACHES['default']['BACKEND'],"
    "'cache_location': s.CACHES['default'].get('LOCATION'),"
    "'keys': s.PORTAL_ENCRYPTION_KEYS,"
    "'secret_key': s.SECRET_KEY}))"
)


def run(code_or_args, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run python with exactly `env` (plus PATH and a private var dir)."""
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORTAL_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        **env,
    }
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def dump(env: dict[str, str], tmp_path: Path) -> dict:
    result = run(DUMP, env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def a_key(key_id: str = "k1") -> str:
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


PRODUCTION = {
    "DEBUG": "false",
    "DJANGO_SECRET_KEY": "x" * 10 + secrets.token_urlsafe(48),
    "PORTAL_URL": "https://portal.example.com",
    "ALLOWED_HOSTS": "portal.example.com",
}


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "DJANGO_SECRET_KEY"),
        ({"DEBUG": "false"}, "DJANGO_SECRET_KEY"),
        ({"PORTAL_ENCRYPTION_KEYS": a_key()}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "s" * 60}, "PORTAL_ENCRYPTION_KEYS"),
    ],
)
def test_production_without_a_required_secret_stops_naming_it(tmp_path, env, missing):
    result = run(SETUP, env, tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("enclave:")]
    assert len(lines) == 1, result.stderr
    assert missing in lines[0]
    assert not (tmp_path / "var" / "encryption.key").exists()
    assert not (tmp_path / "var" / "secret_key").exists()


def test_a_make_run_var_dir_is_a_development_install_without_exporting_debug(tmp_path):
    """`make run` marks its var dir: the commands its banner and the README print work
    as printed, with no DEBUG in the environment; DEBUG=false still overrides it."""
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "DEVELOPMENT").write_text("make run\n")
    check = ["manage.py", "check"]
    assert run(check, {}, tmp_path).returncode == 0
    refused = run(check, {"DEBUG": "false"}, tmp_path)
    assert refused.returncode != 0 and "DJANGO_SECRET_KEY" in refused.stderr


def test_debug_without_configuration_generates_keys_once_with_mode_0600(tmp_path):
    first = dump({"DEBUG": "true"}, tmp_path)
    key_file = tmp_path / "var" / "encryption.key"
    secret_file = tmp_path / "var" / "secret_key"
    for path in (key_file, secret_file):
        assert path.exists()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first["keys"] == [key_file.read_text().strip()]
    assert first["keys"][0].startswith("k1:")
    assert first["secret_key"] == secret_file.read_text().strip()
    # The embedded defaults: SQLite under var/, in-process channel layer and cache.
    assert first["engine"] == "django.db.backends.sqlite3"
    assert first["db_name"] == str(tmp_path / "var" / "portal.sqlite3")
    assert first["channels"] == "channels.layers.InMemoryChannelLayer"
    assert first["cache"] == "django.core.cache.backends.locmem.LocMemCache"

    second = dump({"DEBUG": "true"}, tmp_path)
    assert second["keys"] == first["keys"]
    assert second["secret_key"] == first["secret_key"]


def test_the_embedded_sqlite_database_is_private_before_sqlite_opens_it(tmp_path):
    """The database file exists, 0600, as soon as the settings load (SQLite would create it
    under the umask, 0644), its directory 0700, and stays so once migrated; SQLite gives its
    write-ahead log and shared memory the database file's mode."""
    var = tmp_path / "var"
    dump({"DEBUG": "true"}, tmp_path)
    database = var / "portal.sqlite3"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    # Listed while migrate's connection is still open, so the WAL files exist.
    list_modes = (
        SETUP + "; import json, stat; from pathlib import Path; "
        "from django.core.management import call_command; call_command('migrate', verbosity=0); "
        f"print(json.dumps({{p.name: stat.S_IMODE(p.stat().st_mode) for p in Path({str(var)!r})"
        ".glob('portal.sqlite3*')}))"
    )
    result = run(list_modes, {"DEBUG": "true"}, tmp_path)
    assert result.returncode == 0, result.stderr
    modes = json.loads(result.stdout.strip().splitlines()[-1])
    assert "portal.sqlite3-wal" in modes
    assert modes == dict.fromkeys(modes, 0o600)
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_files_an_older_checkout_left_readable_are_made_private(tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    for name, content in [
        ("secret_key", "s" * 50),
        ("encryption.key", a_key()),
        ("portal.sqlite3", ""),
    ]:
        (var / name).write_text(content)
        (var / name).chmod(0o644)
    settings = dump({"DEBUG": "true"}, tmp_path)
    assert settings["secret_key"] == "s" * 50  # kept, only its mode changed
    for name in ("secret_key", "encryption.key", "portal.sqlite3"):
        assert stat.S_IMODE((var / name).stat().st_mode) == 0o600, name


def test_a_configured_database_creates_no_sqlite_file(tmp_path):
    env = {"DEBUG": "true", "DATABASE_URL": "postgres://enclave:pw@db.example.com:5432/enclave"}
    dump(env, tmp_path)
    assert not (tmp_path / "var" / "portal.sqlite3").exists()


def test_configured_keys_are_used_verbatim(tmp_path):
    keys = f"{a_key('k1')},{a_key('k2')}"
    settings = dump({**PRODUCTION, "PORTAL_ENCRYPTION_KEYS": keys}, tmp_path)
    assert settings["keys"] == keys.split(",")
    assert settings["secret_key"] == PRODUCTION["DJANGO_SECRET_KEY"]
    assert not (tmp_path / "var" / "encryption.key").exists()


def test_database_url_selects_postgresql(tmp_path):
    settings = dump(
        {
            "DEBUG": "true",
            "DATABASE_URL": "postgres://enclave:pw@db.example.com:5432/enclave",
        },
        tmp_path,
    )
    assert settings["engine"] == "django.db.backends.postgresql"
    assert settings["db_name"] == "enclave"
    assert settings["db_host"] == "db.example.com"


def test_redis_url_selects_channels_redis_and_the_redis_cache(tmp_path):
    url = "redis://redis.example.com:6379/0"
    settings = dump({"DEBUG": "true", "REDIS_URL": url}, tmp_path)
    assert settings["channels"] == "channels_redis.core.RedisChannelLayer"
    # A host is the URL itself or a connection dict naming it as its address.
    hosts = settings["channel_hosts"]
    assert len(hosts) == 1
    assert url in (hosts[0], hosts[0].get("address") if isinstance(hosts[0], dict) else None)
    assert settings["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert settings["cache_location"] == url


def test_check_deploy_passes_with_a_production_environment(tmp_path):
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        {**PRODUCTION, "PORTAL_ENCRYPTION_KEYS": a_key()},
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


LAUNCHER = "from portal.__main__ import prepare_server_process; prepare_server_process()"


def test_portal_cpus_pin_the_server_process_only(tmp_path):
    last = max(os.sched_getaffinity(0))
    env = {"DEBUG": "true", "PORTAL_CPUS": str(last)}
    check = "import os; print(sorted(os.sched_getaffinity(0)))"
    # manage.py commands load the settings but keep every CPU ...
    result = run(SETUP + "; " + check, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(sorted(os.sched_getaffinity(0)))
    # ... and so does the ASGI app; the launcher (`python -m portal`) pins the server.
    result = run("import portal.asgi; " + check, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(sorted(os.sched_getaffinity(0)))
    result = run(LAUNCHER + "; " + check, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"[{last}]"


@pytest.mark.parametrize(
    ("value", "message"), [("0-", "is not a CPU list"), ("4095", "none of CPUs 4095")]
)
def test_a_bad_portal_cpus_stops_start_up_naming_it(tmp_path, value, message):
    result = run(LAUNCHER, {"DEBUG": "true", "PORTAL_CPUS": value}, tmp_path)
    assert result.returncode != 0
    assert "PORTAL_CPUS: " in result.stderr and message in result.stderr
