"""A scripted OpenAI-compatible chat server on 127.0.0.1 for tests that talk HTTP to a judge or an LLM.

``ChatServer(answer)`` serves ``POST .../chat/completions`` in threads: ``answer(body)`` gets the request's
JSON body and returns ``(status, content)``; the reply is ``{"choices": [{"message": {"content": ...}}]}``.
A client that dies mid-request (the kill tests) is not an error of the server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    def __init__(self, answer: Callable[[dict], tuple[int, str]]):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, content = answer(body)
                if not self.path.endswith("/chat/completions"):
                    status = 404
                data = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client was killed mid-request

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
