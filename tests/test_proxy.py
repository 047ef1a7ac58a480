"""The caching proxy `python -m ui.load --proxy` measures with (`ui.proxy`), and the lines
docs/hosting.md tells hosts to add: the same cache, checked against a real nginx when one is
installed (Debian: nginx-light)."""

from __future__ import annotations

import http.server
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from ui.bench import free_port
from ui.proxy import CACHE_ZONE, STATIC_CACHE, nginx, nginx_binary, nginx_config

ROOT = Path(__file__).resolve().parent.parent
HOSTING = (ROOT / "docs" / "hosting.md").read_text()
NGINX = nginx_binary()


def test_the_configuration_passes_the_websocket_through_and_caches_only_the_frontend(tmp_path):
    conf = nginx_config(8501, 9000, tmp_path)
    assert "server 127.0.0.1:8501;" in conf and "listen 127.0.0.1:9000;" in conf
    stream = conf.split("location /_stcore/stream {")[1].split("}")[0]
    assert "proxy_set_header Upgrade $http_upgrade;" in stream
    assert "proxy_buffering off;" in stream and "proxy_cache" not in stream
    page = conf.split("location / {")[1].split("}")[0]
    assert "proxy_cache" not in page  # the page itself and everything else: never cached
    static = conf.split("location /static/ {")[1].split("}")[0]
    assert "proxy_cache bbb_static;" in static
    assert "keys_zone=bbb_static:10m" in conf and str(tmp_path / "cache") in conf


def test_the_hosting_guide_adds_the_same_cache():
    assert STATIC_CACHE in HOSTING
    assert CACHE_ZONE.format(cache="/var/cache/nginx/bbb-explorer") in HOSTING


class _App(http.server.BaseHTTPRequestHandler):
    """A stand-in for Streamlit: a health check, a page and a hashed frontend file."""

    served: list[str] = []

    def do_GET(self):  # noqa: N802 - the http.server API
        type(self).served.append(self.path)
        body = b"ok" if self.path == "/_stcore/health" else b"x" * 1000
        self.send_response(200)
        if self.path.startswith("/static/"):
            self.send_header("Cache-Control", "public, immutable, max-age=31536000")
        else:
            self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_nginx_serves_the_frontend_from_its_cache_and_the_page_from_the_app(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config(1, 2, tmp_path))
    check = subprocess.run(
        [NGINX, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    _App.served = []
    try:
        port = free_port()
        with nginx(f"http://127.0.0.1:{app.server_address[1]}", port):
            base = f"http://127.0.0.1:{port}"
            for _ in range(3):
                for path in ("/static/js/index.abc123.js", "/regression"):
                    with urllib.request.urlopen(base + path) as reply:
                        assert reply.status == 200 and len(reply.read()) == 1000
        assert _App.served.count("/static/js/index.abc123.js") == 1  # then from the cache
        assert _App.served.count("/regression") == 3  # the page: every time from the app
    finally:
        app.shutdown()
