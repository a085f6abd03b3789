"""`python -m portal`: serve the portal the production way.

uvicorn with the `websockets-sansio` WebSocket implementation (measured fastest,
docs/performance.md), lifespan on (it runs the housekeeping loop,
`relay.housekeeping`), no proxy headers (the client IP comes from the
socket or `TRUSTED_PROXIES`) and no access log (ticket query strings stay out of logs).
Before serving it applies `PORTAL_CPUS` to the server process and loads every view, then
freezes the start-up heap (`gc.freeze`) so a full garbage collection only walks what
requests created instead of pausing every socket to walk Django's modules again.
Management commands do neither: only the server process is pinned.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys

logger = logging.getLogger("portal")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m portal", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    parser.add_argument(
        "--ws",
        default="websockets-sansio",
        help="uvicorn WebSocket implementation (default websockets-sansio)",
    )
    return parser.parse_args(argv)


def _pin(cpus_text: str) -> None:
    from agent.affinity import AffinityError, format_cpus, parse_cpu_list, pin_process

    try:
        cpus = pin_process(parse_cpu_list(cpus_text))
    except AffinityError as exc:
        sys.exit(f"enclave: PORTAL_CPUS: {exc}")
    logger.info("serving on CPUs %s", format_cpus(cpus))


def _settle_heap() -> None:
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module now
    gc.collect()
    gc.freeze()


def prepare_server_process():
    """Load the application, pin the process to `PORTAL_CPUS`, freeze the start-up heap.

    Returns the ASGI application. A bad `PORTAL_CPUS` exits with a message naming it.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.conf import settings

    from portal.asgi import application

    if settings.PORTAL_CPUS:
        _pin(settings.PORTAL_CPUS)
    _settle_heap()
    return application


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    application = prepare_server_process()
    import uvicorn

    uvicorn.run(
        application,
        host=args.host,
        port=args.port,
        ws=args.ws,
        lifespan="on",
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
