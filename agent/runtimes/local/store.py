"""The environments of the local runtime on disk: one directory each under the root.

``<root>/<id>/environment.json`` holds `EnvRecord.data` (written atomically by
`EnvRecord.persist`), ``home/`` the workspace and ``logs/`` its output. `read_all`
returns every environment that loads and validates, skipping any other directory
with a warning, so one damaged file never keeps the agent from starting;
`new_environment` creates the directory and the record of a new one.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from pathlib import Path
from typing import Any

from agent.protocol import DEPLOYING, STATUSES
from agent.runtimes.records import EnvRecord, now
from agent.runtimes.spec import validate_spec

logger = logging.getLogger(__name__)

_ID = re.compile(r"env-[0-9a-f]{12}")
_OPTIONAL_FIELDS: dict[str, Any] = {
    "metadata": {},
    "phase": None,
    "error": None,
    "ports": [],
    "pid": None,
    "pgid": None,
    "process_started": None,
    "sandbox_uid": None,
}


def read_all(root: Path) -> list[EnvRecord]:
    """Every valid environment under ``root`` (blocking: call it in a thread)."""
    result = []
    for path in root.iterdir():
        if not _ID.fullmatch(path.name):
            continue
        try:
            data = json.loads((path / "environment.json").read_text())
            if data["id"] != path.name or data["status"] not in STATUSES:
                raise ValueError("id or status is invalid")
            for key, default in _OPTIONAL_FIELDS.items():
                data.setdefault(key, default)
            validate_spec(data["spec"])
            env = EnvRecord(data=data, path=path)
            env.refresh()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("skipping environment %s: %s", path.name, exc)
            continue
        result.append(env)
    return result


def new_environment(root: Path, spec: dict[str, Any], metadata: dict[str, str]) -> EnvRecord:
    """A new environment with a fresh id, ``deploying`` in phase ``validating``.

    Its directory is created; the record is neither refreshed nor persisted yet.
    """
    env_id = f"env-{secrets.token_hex(6)}"
    path = root / env_id
    path.mkdir(mode=0o700)
    created = now()
    data = {
        "id": env_id,
        "metadata": metadata,
        "spec": spec,
        "status": DEPLOYING,
        "phase": "validating",
        "error": None,
        "ports": [dict(p, host_port=None) for p in spec["ports"]],
        "pid": None,
        "pgid": None,
        "process_started": None,
        "sandbox_uid": None,
        "created_at": created,
        "updated_at": created,
    }
    return EnvRecord(data=data, path=path)
