"""Validation of environment specs, metadata tags and secret environments.

Every validator returns a fresh, normalised copy and raises
``RuntimeFailure("invalid_spec")`` (``invalid_params`` for secret_env) with a
message naming the offending field — never echoing a secret value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from agent.runtimes.base import INVALID_PARAMS, INVALID_SPEC, RuntimeFailure

SPEC_KEYS: Final = frozenset(
    {
        "image",
        "start_command",
        "setup_script",
        "git_repository",
        "env",
        "ports",
        "resources",
        "network",
    }
)
NETWORKS: Final = ("outbound", "none")
"""A workspace's network: the internet but not the host (``outbound``), or none."""
MAX_SPEC_BYTES: Final = 64 * 1024
MAX_ENV_VARS: Final = 256
MAX_PORTS: Final = 16
INTERNAL_PORTS: Final = 2
"""Ports the portal adds on top of a blueprint's own (the assistant's), so a spec may
declare ``MAX_PORTS + INTERNAL_PORTS``."""
ASSISTANT_PORT_NAME: Final = "assistant"
"""The name of the internal port the workspace's assistant (OpenCode's web UI) listens
on: never the app's ``PORT``, never what "ready" waits for."""
MAX_TAGS: Final = 64
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_TAG_NAME = re.compile(r"[A-Za-z0-9_.\-/]{1,128}")
_GIT_URL = re.compile(r"(https?|ssh|git)://[^\s]+|[A-Za-z0-9_.\-]+@[A-Za-z0-9_.\-]+:[^\s]+")
_RESERVED_ENV: Final = frozenset({"PORT", "DEV_PORT", "HOME"})


def _fail(message: str, code: str = INVALID_SPEC) -> RuntimeFailure:
    return RuntimeFailure(code, message)


def _string(spec: Mapping[str, Any], key: str, limit: int) -> str:
    value = spec.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(f"{key} must be a string")
    if len(value) > limit or "\x00" in value:
        raise _fail(f"{key} is too long or contains NUL")
    return value


def validate_env(value: Any, field: str, *, code: str = INVALID_SPEC) -> dict[str, str]:
    """A ``{NAME: value}`` mapping of environment variables."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(f"{field} must be an object", code)
    if len(value) > MAX_ENV_VARS:
        raise _fail(f"{field} has more than {MAX_ENV_VARS} variables", code)
    result: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise _fail(f"{field} has an invalid variable name", code)
        if not isinstance(item, str) or "\x00" in item or len(item) > 32 * 1024:
            raise _fail(f"{field}.{name} must be a string without NUL", code)
        result[name] = item
    return result


def _ports(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    limit = MAX_PORTS + INTERNAL_PORTS
    if not isinstance(value, list) or len(value) > limit:
        raise _fail(f"ports must be a list of at most {limit} entries")
    result: list[dict[str, Any]] = []
    seen: set[int] = set()
    for entry in value:
        if not isinstance(entry, Mapping) or set(entry) - {"port", "name"}:
            raise _fail('each port must be {"port": int, "name": str}')
        port = entry.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise _fail("port must be an integer between 1 and 65535")
        if port in seen:
            raise _fail(f"port {port} is declared twice")
        seen.add(port)
        name = entry.get("name") or f"port-{port}"
        if not isinstance(name, str) or not _PORT_NAME.fullmatch(name):
            raise _fail("port name must be lowercase letters, digits and dashes")
        result.append({"port": port, "name": name})
    return result


def _network(value: Any) -> str:
    if value in (None, ""):
        return NETWORKS[0]
    if value not in NETWORKS:
        raise _fail(f"network must be one of {', '.join(NETWORKS)}")
    return value


def _resources(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail("resources must be an object")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str | int | float | bool | None):
            raise _fail("resources must map names to scalar values")
    return dict(value)


def validate_spec(spec: Any, *, allow_file_git: bool = False) -> dict[str, Any]:
    """A normalised spec with every key present."""
    if not isinstance(spec, Mapping):
        raise _fail("spec must be an object")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise _fail(f"unknown spec fields: {', '.join(sorted(map(str, unknown)))}")
    repo = _string(spec, "git_repository", 2048)
    if repo and not (_GIT_URL.fullmatch(repo) or (allow_file_git and repo.startswith("file://"))):
        raise _fail("git_repository must be an https://, ssh:// or git@host:path URL")
    env = validate_env(spec.get("env"), "env")
    reserved = sorted(set(env) & _RESERVED_ENV | {n for n in env if n.startswith("PORT_")})
    if reserved:
        raise _fail(f"env may not set {', '.join(reserved)} (allocated by the agent)")
    result = {
        "image": _string(spec, "image", 512),
        "start_command": _string(spec, "start_command", 8 * 1024),
        "setup_script": _string(spec, "setup_script", 32 * 1024),
        "git_repository": repo,
        "env": env,
        "ports": _ports(spec.get("ports")),
        "resources": _resources(spec.get("resources")),
        "network": _network(spec.get("network")),
    }
    if len(json.dumps(result)) > MAX_SPEC_BYTES:
        raise _fail(f"spec is larger than {MAX_SPEC_BYTES} bytes")
    return result


def validate_metadata(metadata: Any, *, allow_delete: bool = False) -> dict[str, str | None]:
    """Tags ``{name: value}``; with ``allow_delete`` a ``None`` value means remove."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or len(metadata) > MAX_TAGS:
        raise _fail(f"metadata must be an object of at most {MAX_TAGS} tags")
    result: dict[str, str | None] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not _TAG_NAME.fullmatch(name):
            raise _fail("metadata tag names are 1-128 of A-Z a-z 0-9 _ . - /")
        if value is None and allow_delete:
            result[name] = None
            continue
        if not isinstance(value, str) or len(value) > 1024:
            raise _fail(f"metadata {name} must be a string of at most 1024 characters")
        result[name] = value
    return result


def validate_secret_env(value: Any) -> dict[str, str] | None:
    """Secret variables, or None when not given (keep what is already held)."""
    if value is None:
        return None
    return validate_env(value, "secret_env", code=INVALID_PARAMS)
