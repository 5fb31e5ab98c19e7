"""Serves app.py on 0.0.0.0:PORT (default 8080) for the container image built by
workflows/seed-ci.yml, where other containers reach it by name."""
import sys
from http.server import HTTPServer

from app import Handler

if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    server = HTTPServer(("0.0.0.0", port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
