"""`FileService`: the ``files.*`` RPC methods of the agent (registered by `agent.rpc`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from agent.files.operations import delete, list_dir, read_file, rename, write_file
from agent.runtimes.base import Runtime

T = TypeVar("T")


class FileService:
    """The ``files.*`` RPC methods on one runtime: each runs in a thread while
    `Runtime.workspace_home` lends the home (so a delete waits for it to finish)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def list(self, env_id: str, path: str) -> dict[str, Any]:
        return await self._run(env_id, list_dir, path)

    async def read(self, env_id: str, path: str) -> dict[str, Any]:
        return await self._run(env_id, read_file, path)

    async def write(
        self, env_id: str, path: str, content: bytes, base_version: str | None
    ) -> dict[str, Any]:
        return await self._run(env_id, write_file, path, content, base_version)

    async def rename(self, env_id: str, source: str, target: str, overwrite: bool) -> dict:
        return await self._run(env_id, rename, source, target, overwrite)

    async def delete(self, env_id: str, path: str, recursive: bool) -> dict[str, Any]:
        return await self._run(env_id, delete, path, recursive)

    async def _run(self, env_id: str, operation: Callable[..., T], *args: Any) -> T:
        async with self.runtime.workspace_home(env_id) as home:
            job = asyncio.ensure_future(asyncio.to_thread(operation, home, *args))
            try:
                return await asyncio.shield(job)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await job  # the home stays lent until the thread is done with it
                raise
