"""Command line of the agent: ``python -m agent --portal-url URL --token TOKEN``.

Every flag can also come from the environment (``ENCLAVE_*``); this module is
the only place the agent reads environment variables. SIGTERM/SIGINT close the
tunnel and exit; workspaces keep running and are adopted on the next start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import agent
from agent import __version__
from agent.affinity import AffinityError, format_cpus, parse_cpu_list, pin_process
from agent.runtimes.local import LocalRuntime
from agent.runtimes.local.sandbox import ENTRYPOINT, Sandbox, SandboxUnavailable
from agent.runtimes.local.secret_store import key_from_token
from agent.tunnel import Tunnel, tunnel_url

RUNTIMES = ("local",)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
INSTALLED_TOOLS = Path("/opt/enclave/tools")
"""Where an installed agent (a package, an image) has the AI tools."""
CHECKOUT_TOOLS = Path(agent.__file__).resolve().parents[1] / "tools"
"""The AI tools of a checkout of the repository, installed by ``make setup``."""

logger = logging.getLogger("agent")


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m agent",
        description="Enclave agent: dials the portal over an outbound WebSocket tunnel and "
        "runs workspace operations on this host or cluster.",
    )
    parser.add_argument(
        "--portal-url",
        default=env.get("ENCLAVE_PORTAL_URL"),
        help="base URL of the portal, e.g. https://enclave.example.com; the agent dials "
        "wss://…/agent/v1/tunnel (env ENCLAVE_PORTAL_URL)",
    )
    parser.add_argument(
        "--token",
        default=env.get("ENCLAVE_AGENT_TOKEN"),
        help="agent token shown once when the cluster was registered in the portal; prefer "
        "the environment variable so it does not show in the process list "
        "(env ENCLAVE_AGENT_TOKEN)",
    )
    parser.add_argument(
        "--runtime",
        default=env.get("ENCLAVE_RUNTIME", "local"),
        choices=RUNTIMES,
        help="where workspaces run: 'local' = processes on this host (env ENCLAVE_RUNTIME, "
        "default local)",
    )
    parser.add_argument(
        "--data-dir",
        default=env.get("ENCLAVE_DATA_DIR", "var-agent"),
        help="directory holding environments (local runtime); keep it out of the portal's "
        "var/ (env ENCLAVE_DATA_DIR, default var-agent)",
    )
    parser.add_argument(
        "--log-level",
        default=env.get("ENCLAVE_LOG_LEVEL", "INFO").upper(),
        choices=LOG_LEVELS,
        help="log verbosity (env ENCLAVE_LOG_LEVEL, default INFO)",
    )
    parser.add_argument(
        "--shell-grace",
        type=float,
        default=env.get("ENCLAVE_SHELL_GRACE", "300"),
        help="seconds a terminal's shell outlives a dropped browser, so a reconnect resumes "
        "it (env ENCLAVE_SHELL_GRACE, default 300)",
    )
    parser.add_argument(
        "--cpus",
        default=env.get("ENCLAVE_CPUS", ""),
        help="run the agent, and the workspaces it starts, on these CPUs only, e.g. 1-3 "
        "(Linux CPU list; keeps workspaces off the portal's CPUs on a shared host) "
        "(env ENCLAVE_CPUS, default all)",
    )
    parser.add_argument(
        "--tools-dir",
        default=env.get("ENCLAVE_AGENT_TOOLS_DIR"),
        help="directory of the AI tools (OpenCode, Claude Code) mapped read-only into every "
        "workspace, with bin/enclave-entrypoint (env ENCLAVE_AGENT_TOOLS_DIR, default "
        f"{INSTALLED_TOOLS} if it exists, else the checkout's tools/)",
    )
    parser.add_argument(
        "--insecure-no-sandbox",
        action="store_true",
        default=env.get("ENCLAVE_INSECURE_NO_SANDBOX", "").lower() in ("1", "true", "yes"),
        help="run workspaces without the bubblewrap sandbox: every builder can read every "
        "other workspace, the agent's files and this host as the agent's user. Only for "
        "a host where bubblewrap cannot run and every builder is trusted; the portal shows "
        "the cluster as not isolated (env ENCLAVE_INSECURE_NO_SANDBOX)",
    )
    parser.add_argument("--version", action="version", version=f"enclave-agent {__version__}")
    return parser


def workspace_sandbox(args: argparse.Namespace) -> Sandbox | None:
    """The host's sandbox; exits naming what is missing unless the insecure mode is asked."""
    if args.insecure_no_sandbox:
        logger.warning(
            "INSECURE: --insecure-no-sandbox given: workspaces are NOT isolated from each "
            "other, from the agent or from this host"
        )
        return None
    try:
        return Sandbox.detect()
    except SandboxUnavailable as exc:
        sys.exit(
            f"enclave agent: cannot isolate workspaces: {exc}.\n"
            "Install it, or start with --insecure-no-sandbox (ENCLAVE_INSECURE_NO_SANDBOX=true) "
            "on a host where every builder is trusted."
        )


def tools_dir(parser: argparse.ArgumentParser, given: str | None) -> Path | None:
    """The AI tools directory: ``--tools-dir``, else the installed or the checkout's one;
    None (with a warning) when there are none: workspaces then run without AI tools."""
    if given:
        path = Path(given).resolve()
        if not (path / ENTRYPOINT).is_file():
            parser.error(f"--tools-dir: {path} has no {ENTRYPOINT}")
    elif INSTALLED_TOOLS.exists():
        path = INSTALLED_TOOLS
    elif (CHECKOUT_TOOLS / ENTRYPOINT).is_file():
        path = CHECKOUT_TOOLS
    else:
        logger.warning("no AI tools found: workspaces run without them (install: make setup)")
        return None
    missing = [name for name in ("opencode", "claude") if not (path / "bin" / name).exists()]
    if missing:
        logger.warning(
            "AI tools under %s are not installed (%s missing): run make setup",
            path,
            ", ".join(missing),
        )
    return path


async def serve(args: argparse.Namespace, sandbox: Sandbox | None, tools: Path | None) -> None:
    """Load the runtime, keep the tunnel up until a signal arrives.

    The secret env of each workspace is kept sealed with a key derived from the agent
    token, so shells opened after an agent restart still get it.
    """
    runtime = LocalRuntime(
        args.data_dir,
        sandbox=sandbox,
        tools_dir=tools,
        secret_key=key_from_token(args.token),
    )
    await runtime.load()
    tunnel = Tunnel(
        portal_url=args.portal_url, token=args.token, runtime=runtime, shell_grace=args.shell_grace
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, tunnel.stop)
    try:
        await tunnel.run()
    finally:
        await runtime.shutdown()
        logger.info("agent stopped; workspaces keep running")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.portal_url:
        parser.error("--portal-url (or ENCLAVE_PORTAL_URL) is required")
    if not args.token or any(c.isspace() for c in args.token):
        parser.error("--token (or ENCLAVE_AGENT_TOKEN) is required and has no spaces")
    try:
        tunnel_url(args.portal_url)
    except ValueError as exc:
        parser.error(str(exc))
    cpus = None
    if args.cpus.strip():
        try:
            cpus = pin_process(parse_cpu_list(args.cpus))
        except AffinityError as exc:
            parser.error(f"--cpus: {exc}")
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logger.info("enclave agent %s starting (runtime %s)", __version__, args.runtime)
    sandbox = workspace_sandbox(args)
    if sandbox is not None:
        logger.info("workspaces run in bubblewrap sandboxes, each with its own network")
    tools = tools_dir(parser, args.tools_dir)
    if tools is not None:
        logger.info("AI tools from %s", tools)
    if cpus is not None:
        logger.info("running on CPUs %s, with the workspaces it starts", format_cpus(cpus))
    asyncio.run(serve(args, sandbox, tools))
    return 0


if __name__ == "__main__":
    sys.exit(main())
