"""HTTP/1.1 client micro-benchmark: the agent's hand-written client against h11.

Measures the per-request CPU cost of what `agent.forward.client` does for every preview
request — serialise the request head, parse the response head, read the body — and of
an h11-based equivalent doing the same over the same kind of connection (h11 yields
bytes headers, so they are decoded to the ``str`` pairs the agent forwards). Two
responses: 1 KiB with ``Content-Length`` and 1 MiB chunked (16 KiB chunks).

The app is a tiny asyncio HTTP/1.1 server in a child process on 127.0.0.1 (its replies
are prebuilt bytes), so the CPU time measured is the client's own. Each client sends its
requests one after the other on one kept-alive connection; rounds of the two clients
alternate and the best round of each is kept. Bounded: by default 5,000 small and 500
large requests per round, 3 rounds (well under a minute); it stops by itself.

Printed per client and response: requests/s (wall clock) and client CPU µs per request.

Run: `.venv/bin/python bench/http_client.py [--requests 5000] [--large-requests 500]
[--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import h11

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.forward import client
from agent.forward.client import BODY_CHUNK, MAX_RESPONSE_HEAD, Connection, Framing

SMALL = 1024
LARGE = 1024 * 1024
CHUNK = 16 * 1024
WARM_UP = 200
HEADERS = [
    ("Host", "app-3000.preview.example.test"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-GB,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Cookie", "theme=dark; session=3f2a9c1e"),
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Forwarded-Proto", "https"),
]
"""What a browser request carries once the portal has stripped its credentials."""

Answer = tuple[int, list[tuple[str, str]], int]
"""Status, headers and body size of a response."""
Request = Callable[[str], Awaitable[Answer]]
Client = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Request]


# -- the app ------------------------------------------------------------------------------


def _replies() -> dict[bytes, bytes]:
    common = b"Content-Type: application/octet-stream\r\nDate: Mon, 1 Jan 2024 00:00:00 GMT\r\n"
    small = b"HTTP/1.1 200 OK\r\n" + common + b"Content-Length: %d\r\n\r\n" % SMALL
    chunked = b"HTTP/1.1 200 OK\r\n" + common + b"Transfer-Encoding: chunked\r\n\r\n"
    piece = b"%x\r\n%b\r\n" % (CHUNK, b"x" * CHUNK)
    return {
        b"/small": small + b"x" * SMALL,
        b"/large": chunked + piece * (LARGE // CHUNK) + b"0\r\n\r\n",
    }


async def _serve() -> None:
    replies = _replies()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(replies[head.split(b" ", 2)[1]])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    # The parent closes stdin when it is done (or dies): then the app ends too.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()


# -- the two clients ----------------------------------------------------------------------


def agent_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request:
    """Requests through `agent.forward.client`, as `agent.forward.http` makes them."""
    conn = Connection(reader, writer, 3000)

    async def request(path: str) -> Answer:
        head, _ = client.request_head("GET", path, HEADERS, has_body=False)
        writer.write(head)
        await writer.drain()
        response = await client.read_response_head(conn, "GET", 3000, timeout=10.0)
        if response.framing is Framing.LENGTH and response.length <= BODY_CHUNK:
            size = len(await client.read_exact(reader, response.length))
        else:
            size = 0
            async for data in client.read_body(reader, response):
                size += len(data)
        return response.status, response.headers, size

    return request


def h11_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request:
    """The same requests with h11: the same ``str`` headers in, and out."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)

    async def request(path: str) -> Answer:
        if conn.our_state is h11.DONE:
            conn.start_next_cycle()
        writer.write(conn.send(h11.Request(method="GET", target=path, headers=HEADERS)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        status, headers, size = 0, [], 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(BODY_CHUNK))
            elif isinstance(event, h11.Response):
                status = event.status_code
                raw = event.headers.raw_items()
                headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw]
            elif isinstance(event, h11.Data):
                size += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, size
            else:
                raise AssertionError(f"unexpected {event!r}")

    return request


# -- measurement --------------------------------------------------------------------------


async def run_round(client_for: Client, port: int, path: str, n: int) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) for ``n`` requests after a warm-up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=MAX_RESPONSE_HEAD)
    request = client_for(reader, writer)
    expected = SMALL if path == "/small" else LARGE
    for _ in range(WARM_UP):
        status, headers, size = await request(path)
        assert (status, len(headers), size) == (200, 3, expected)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await request(path)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    writer.close()
    await writer.wait_closed()
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="1 KiB requests per round")
    parser.add_argument("--large-requests", type=int, default=500, help="1 MiB requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return
    cpus = sorted(os.sched_getaffinity(0))
    pin = ["taskset", "-c", str(cpus[-1])] if len(cpus) > 1 else []
    app = [*pin, sys.executable, __file__, "--serve"]
    # Leaving the block closes the app's stdin: the app ends, and is waited for.
    with subprocess.Popen(app, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        if pin:
            os.sched_setaffinity(0, {cpus[0]})  # client and app on CPUs of their own
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        clients = {"agent (hand-written)": agent_client, f"h11 {h11.__version__}": h11_client}
        cases = [("1 KiB, Content-Length", "/small", args.requests)]
        cases.append(("1 MiB, chunked", "/large", args.large_requests))
        best: dict[tuple[str, str], tuple[float, float]] = {}
        for _ in range(args.rounds):
            for case, path, n in cases:
                for name, client_for in clients.items():
                    wall, cpu = asyncio.run(run_round(client_for, port, path, n))
                    key = (case, name)
                    best[key] = min(best.get(key, (wall, cpu)), (wall, cpu), key=lambda r: r[1])
    python = sys.version.split()[0]
    print(f"\nHTTP/1.1 client, loopback, best of {args.rounds} rounds, Python {python}\n")
    print("| response | client | requests | req/s | client CPU µs/request |")
    print("|---|---|---|---|---|")
    for case, _, n in cases:
        for name in clients:
            wall, cpu = best[(case, name)]
            print(f"| {case} | {name} | {n} | {n / wall:,.0f} | {cpu / n * 1e6:,.1f} |")


if __name__ == "__main__":
    main()
