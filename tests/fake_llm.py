"""A test-owned LLM provider: OpenAI-compatible chat completions and Anthropic Messages.

Stdlib only, so a test can run it anywhere — on the host, or inside a workspace's sandbox
(its setup script writes this file, its start command runs it) where the workspace's own
network reaches it on loopback. Every request is appended to a JSON-lines file (method,
path, headers, body); every answer is the canned `ANSWER`, streamed (SSE) when asked.

    python3 fake_llm.py PORT RECORD_FILE
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = "The canned answer of the fake LLM: " + "-".join(("ANSWER", "CANARY", "5d1e")) + "."
"""Built at run time: this file's text (in a blueprint's setup script, so in the portal's
database) never contains the answer itself, which a test looks for in the portal's data."""
TITLE = "A chat title"


class Handler(BaseHTTPRequestHandler):
    record: str = ""

    def log_message(self, format: str, *args) -> None:  # quiet: the record file says it all
        pass

    def _record(self, body: object) -> None:
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        with open(self.record, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def _json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _events(self, events: list[tuple[str | None, object]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for name, payload in events:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            prefix = f"event: {name}\n" if name else ""
            self.wfile.write(f"{prefix}data: {text}\n\n".encode())
        self.wfile.flush()

    def do_GET(self) -> None:
        self._record(None)
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        self._record(body)
        if not isinstance(body, dict):
            return self._json(400, {"error": {"message": "bad json"}})
        if self.path.split("?")[0].endswith("/chat/completions"):
            return self._openai(body)
        if self.path.split("?")[0].endswith("/messages"):
            return self._anthropic(body)
        return self._json(404, {"error": {"message": "not found"}})

    @staticmethod
    def _is_title_request(body: dict) -> bool:
        system = json.dumps(body.get("messages", [])[:1]) + json.dumps(body.get("system", ""))
        return "title generator" in system

    def _openai(self, body: dict) -> None:
        text = TITLE if self._is_title_request(body) else ANSWER
        base = {"id": "chatcmpl-1", "created": 1, "model": body.get("model", "fake-model")}
        if not body.get("stream"):
            return self._json(
                200,
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                },
            )
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[tuple[str | None, object]] = []
        for i, word in enumerate(text.split(" ")):
            delta = {"content": word if i == 0 else f" {word}"}
            if i == 0:
                delta["role"] = "assistant"
            events.append(
                (None, {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            )
        events.append(
            (
                None,
                {
                    **chunk,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                },
            )
        )
        events.append((None, "[DONE]"))
        self._events(events)

    def _anthropic(self, body: dict) -> None:
        text = TITLE if self._is_title_request(body) else ANSWER
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        }
        if not body.get("stream"):
            message.update(content=[{"type": "text", "text": text}], stop_reason="end_turn")
            return self._json(200, message)
        self._events(
            [
                ("message_start", {"type": "message_start", "message": message}),
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": text},
                    },
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": 5},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
        )


def main() -> None:
    port, record = int(sys.argv[1]), sys.argv[2]
    Handler.record = record
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
