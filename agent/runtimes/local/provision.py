"""Preparing a new workspace's files: clone, setup script, a git repository.

`prepare` runs every step of provisioning that comes before the start command, and
reports each phase (``creating``, ``cloning``, ``configuring``) before it begins.
Guarantees: every step's output goes to the environment's log only; a step that
fails or outlasts the timeout raises ``RuntimeFailure("internal")`` naming the step,
never repeating its output. Git runs without prompts and without the workspace's
secrets; the setup script runs with the workspace's own environment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agent.runtimes import process as proc_util
from agent.runtimes.base import INTERNAL, RuntimeFailure
from agent.runtimes.records import EnvRecord

Wrap = Callable[[list[str], dict[str, str]], tuple[list[str], dict[str, str]]]
"""Turns a step's argv and environment into the command line that runs it (a sandbox)."""

_GIT_IDENTITY = ["-c", "user.name=Enclave", "-c", "user.email=enclave@localhost"]


async def prepare(
    env: EnvRecord,
    *,
    phase: Callable[[str], Awaitable[None]],
    setup_env: Callable[[], dict[str, str]],
    timeout: float,
    wrap: Wrap | None = None,
) -> None:
    """Create the workspace, clone, run the setup script, make sure it is a git repository.

    ``setup_env`` is asked for the setup script's environment when the script starts;
    ``wrap``, when given, runs every step in the workspace's sandbox.
    """
    spec = env.data["spec"]
    await phase("creating")
    env.home.mkdir(exist_ok=True, mode=0o700)
    env.log_dir.mkdir(exist_ok=True, mode=0o700)
    if spec["git_repository"]:
        await phase("cloning")
        await _git(env, ["clone", "--", spec["git_repository"], "."], "clone", timeout, wrap)
    await phase("configuring")
    if spec["setup_script"]:
        argv = ["bash", "-lc", spec["setup_script"]]
        await _run(env, argv, "setup script", setup_env(), timeout, wrap)
    if not (env.home / ".git").exists():
        await _git(env, ["-c", "init.defaultBranch=main", "init", "-q"], "git", timeout, wrap)
        await _git(env, ["add", "-A"], "git", timeout, wrap)
        commit = [*_GIT_IDENTITY, "commit", "-q", "--allow-empty", "-m", "Workspace"]
        await _git(env, commit, "git", timeout, wrap)


async def _git(
    env: EnvRecord, args: list[str], what: str, timeout: float, wrap: Wrap | None
) -> None:
    git_env = {**proc_util.base_env(env.home), "GIT_TERMINAL_PROMPT": "0"}
    await _run(env, ["git", *args], what, git_env, timeout, wrap)


async def _run(
    env: EnvRecord,
    argv: list[str],
    what: str,
    run_env: dict[str, str],
    timeout: float,
    wrap: Wrap | None,
) -> None:
    if wrap is not None:
        argv, run_env = wrap(argv, run_env)
    try:
        code = await proc_util.run_logged(
            argv, cwd=env.home, env=run_env, log_dir=env.log_dir, timeout=timeout
        )
    except TimeoutError:
        raise RuntimeFailure(INTERNAL, f"{what} timed out") from None
    if code != 0:
        raise RuntimeFailure(INTERNAL, f"{what} failed ({proc_util.exit_reason(code)})")
