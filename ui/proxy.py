"""nginx in front of one app process, caching Streamlit's frontend: how `python -m ui.load
--proxy` measures the app as docs/hosting.md recommends serving it to a class.

Every new browser fetches Streamlit's frontend (about 140 JavaScript, style and font files,
9.4 MB) before its session starts; the app process serves them itself otherwise (about 0.4 s
of its CPU per browser on the project's 2-core machine). Those files are content-hashed and sent
with `Cache-Control: public, immutable, max-age=31536000`, so a caching proxy may keep them: with
`STATIC_CACHE` below, the app serves each file once and nginx every later copy. The page, its
websocket and everything else pass through unchanged.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ui.bench import stop, wait_healthy

# The lines docs/hosting.md adds to its nginx configuration (tests/test_proxy.py keeps the two
# the same): a cache for Streamlit's hashed frontend files.
CACHE_ZONE = (
    "proxy_cache_path {cache} levels=1:2 keys_zone=bbb_static:10m max_size=200m inactive=7d;"
)
STATIC_CACHE = """\
    # Streamlit's frontend: content-hashed files sent as "public, immutable"; served from the
    # cache after the first browser, so the app's process serves each file once.
    location /static/ {
        proxy_pass http://bbb_explorer;
        proxy_cache bbb_static;
        proxy_cache_valid 200 7d;
        proxy_cache_lock on;
        add_header X-Cache-Status $upstream_cache_status;
    }
"""


def nginx_config(app_port: int, port: int, workdir: Path) -> str:
    """A complete nginx configuration: listen on `port` (localhost), pass everything to the app
    on `app_port`, the websocket included, and cache its frontend files under `workdir`."""
    zone = CACHE_ZONE.format(cache=workdir / "cache")
    user = pwd.getpwuid(os.getuid()).pw_name  # its workers write the cache: as this user
    return f"""\
daemon off;
user {user};
worker_processes 1;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {workdir / "body"};
    proxy_temp_path {workdir / "proxy"};
    fastcgi_temp_path {workdir / "fastcgi"};
    uwsgi_temp_path {workdir / "uwsgi"};
    scgi_temp_path {workdir / "scgi"};
    {zone}
    upstream bbb_explorer {{ server 127.0.0.1:{app_port}; }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ""      close;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 12m;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        location / {{
            proxy_pass http://bbb_explorer;
        }}
        location /_stcore/stream {{
            proxy_pass http://bbb_explorer;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
        }}
{STATIC_CACHE}    }}
}}
"""


def nginx_binary() -> str | None:
    """nginx's path (on PATH or in the sbin directories a non-root PATH may lack), or None."""
    found = shutil.which("nginx")
    return found or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


@contextlib.contextmanager
def nginx(app_url: str, port: int, timeout: float = 10.0) -> Iterator[subprocess.Popen]:
    """Run nginx (from PATH) in front of the app at `app_url` on `port`; yield its master
    process; stop it afterwards. RuntimeError if nginx is missing or does not answer."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light)")
    app_port = int(app_url.rsplit(":", 1)[1])
    with tempfile.TemporaryDirectory(prefix="bbb-nginx-") as tmp:
        workdir = Path(tmp)
        conf = workdir / "nginx.conf"
        conf.write_text(nginx_config(app_port, port, workdir))
        proc = subprocess.Popen(
            [binary, "-c", str(conf), "-p", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            if not wait_healthy(f"http://127.0.0.1:{port}", proc, timeout):
                error = proc.stderr.read().decode() if proc.poll() is not None else ""
                raise RuntimeError(f"nginx did not start on port {port}: {error.strip()}")
            yield proc
        finally:
            stop(proc)
            proc.stderr.close()
