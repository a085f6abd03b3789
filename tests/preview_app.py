"""A small real web app for preview tests, run inside a workspace (standard library only).

Routes: `/` (a page whose script opens a WebSocket and reports what it can see),
`/app.js`, `/spa` and every path under it (a single-page app: a button that pushes
`/spa/pushed` and sets the title, a link to `#section`, a log of the messages the page
receives and of the navigations each one started), `/spa.js`, `POST /echo` (sha256 and
size of the body, the headers), `/headers`, `/download` (20 MiB, streamed), `/sse` (five
events 0.3 s apart), `/redirect` (302 with two cookies), `/ws` (a minimal RFC 6455 echo).
Listens on `$PORT`.
"""

import base64
import hashlib
import json
import os
import struct
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOCK = bytes((i * 7 + 3) % 256 for i in range(65536))
DOWNLOAD_BLOCKS = 320  # 20 MiB
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>preview app</title></head>
<body><h1 id="title">Preview app</h1><pre id="out">loading</pre>
<script src="/app.js"></script></body></html>"""

SCRIPT = b"""
const out = {page: true, cookie: document.cookie, parent: "readable"};
try { out.parent = String(window.parent.document.cookie); } catch (e) { out.parent = "blocked"; }
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/ws");
ws.onopen = () => ws.send("echo-me");
ws.onmessage = (event) => { out.websocket = event.data; report(); };
ws.onerror = () => { out.websocket = "error"; report(); };
function report() { document.getElementById("out").textContent = JSON.stringify(out); }
report();
"""


SPA_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>SPA app</title></head>
<body><h1>Single-page app</h1><button id="push">Push /spa/pushed</button>
<a id="to-section" href="#section">To the section</a>
<p>Loaded: <output id="loaded" aria-label="Load id"></output></p>
<pre id="log" role="log" aria-label="Messages received">[]</pre>
<h2 id="section">Section</h2><script src="/spa.js"></script></body></html>"""

SPA_SCRIPT = b"""
const log = [];
let navigating = null;
document.getElementById("loaded").textContent = String(Math.random());
document.getElementById("push").addEventListener("click", () => {
  history.pushState({}, "", "/spa/pushed");
  document.title = "Pushed";
});
// A navigation started while a message is handled (by a listener registered before this
// one, such as the preview bridge's) fires "navigate" in the same task, before this page's
// own listener runs; it is forgotten in the next task.
if (window.navigation) {
  navigation.addEventListener("navigate", (event) => {
    navigating = event.destination.url;
    setTimeout(() => { navigating = null; }, 0);
  });
}
addEventListener("message", (event) => {
  const data = event.data || {};
  log.push({origin: event.origin, type: data.type, path: data.path, hash: location.hash,
            navigating});
  document.getElementById("log").textContent = JSON.stringify(log);
});
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, content_type="text/plain", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _headers(self):
        return [[name, value] for name, value in self.headers.items()]

    def do_GET(self):
        if self.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self._websocket()
        if self.path == "/":
            return self._send(200, PAGE, "text/html; charset=utf-8", [("X-Frame-Options", "DENY")])
        if self.path == "/app.js":
            return self._send(200, SCRIPT, "text/javascript")
        if self.path == "/spa.js":
            return self._send(200, SPA_SCRIPT, "text/javascript")
        if self.path.split("?", 1)[0].startswith("/spa"):
            return self._send(200, SPA_PAGE, "text/html; charset=utf-8")
        if self.path == "/headers":
            return self._send(200, json.dumps(self._headers()).encode(), "application/json")
        if self.path == "/download":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(BLOCK) * DOWNLOAD_BLOCKS))
            self.end_headers()
            for _ in range(DOWNLOAD_BLOCKS):
                self.wfile.write(BLOCK)
            return None
        if self.path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(5):
                self.wfile.write(f"data: event {i} at {time.time():.3f}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.3)
            self.close_connection = True
            return None
        if self.path == "/redirect":
            cookies = [("Set-Cookie", "app_cookie=yes; Path=/"), ("Set-Cookie", "second=2")]
            return self._send(302, b"", extra=[("Location", "/headers"), *cookies])
        return self._send(404, b"no such page in the app")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(length)
        digest = hashlib.sha256(body).hexdigest()
        answer = {"size": len(body), "sha256": digest, "headers": self._headers()}
        return self._send(200, json.dumps(answer).encode(), "application/json")

    def _websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(
            hashlib.sha1((key + WS_GUID).encode(), usedforsecurity=False).digest()
        ).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                break
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 0x8:
                self.wfile.write(b"\x88" + bytes([len(data)]) + data)
                break
            if opcode in (0x1, 0x2):
                if len(data) < 126:
                    header = bytes([0x80 | opcode, len(data)])
                elif len(data) < 65536:
                    header = bytes([0x80 | opcode, 126]) + struct.pack("!H", len(data))
                else:
                    header = bytes([0x80 | opcode, 127]) + struct.pack("!Q", len(data))
                self.wfile.write(header + data)
                self.wfile.flush()
        self.close_connection = True


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
