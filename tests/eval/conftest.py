"""A local OpenAI-compatible chat server for the LLM-judge tests: `state["policy"](last message) -> reply`."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def no_policy(content: str) -> str:
    raise AssertionError("set endpoint['policy'] before calling the judge")


@pytest.fixture
def endpoint():
    """A local OpenAI-compatible /v1/chat/completions server; `state["policy"]` decides each verdict."""
    state = {"policy": no_policy, "requests": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            assert self.path == "/v1/chat/completions", self.path
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["requests"].append(body)
            verdict = state["policy"](body["messages"][-1]["content"])
            reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": verdict}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()
