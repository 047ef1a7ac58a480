"""The Dockerfile's contract, read from the file itself (no Docker, no network).

The image is the app on a Python 3.11 slim base, installed with the README's command
(`pip install -r requirements.txt`, torch's CPU build first), run by a user other than root, with
port 8501 exposed, a health check on Streamlit's `/_stcore/health` and `streamlit run app.py` as
its command. Every file it copies exists and is not left out of the build context by
.dockerignore, and the app's own packages are all copied. The health check's Python command is
run against a local HTTP server: exit 0 on "ok", non-zero on a 503 or no server.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import re
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
PORT = 8501
HEALTH = f"http://localhost:{PORT}/_stcore/health"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            logical.append(current.strip())
        current = ""
    assert not current.strip(), "the Dockerfile ends inside a continued line"
    result = []
    for line in logical:
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def of(kind: str) -> list[str]:
    return [args for word, args in instructions() if word == kind]


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form CMD (or HEALTHCHECK ... CMD)."""
    assert args.startswith("["), f"not in exec form (a JSON array): {args}"
    return json.loads(args)


def copy_sources(args: str) -> tuple[list[str], str]:
    """COPY's sources and destination, its --flags left out."""
    words = [w for w in shlex.split(args) if not w.startswith("--")]
    if words and words[0].startswith("["):
        words = json.loads(args[args.index("[") :])
    return words[:-1], words[-1]


def test_the_base_is_the_official_python_3_11_slim_image():
    froms = of("FROM")
    assert len(froms) == 1, f"one stage expected, got FROM {froms}"
    image = froms[0].split()[0]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?", image), image


def test_it_installs_with_the_readmes_command_and_torchs_cpu_build_first():
    runs = of("RUN")
    installs = [r for r in runs if re.search(r"pip install .*-r requirements\.txt", r)]
    assert installs, "no `pip install -r requirements.txt`"
    run = installs[0]
    cpu_index = "--index-url https://download.pytorch.org/whl/cpu"
    assert cpu_index in run, "torch must come from the CPU index (PyPI's Linux torch is CUDA)"
    assert run.index(cpu_index) < run.index("-r requirements.txt"), "torch's CPU build first"
    # the CPU step reads the pin with grep: requirements.txt must hold exactly one such line
    pins = [
        line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if re.match(r"torch==", line)
    ]
    assert len(pins) == 1 and re.fullmatch(r"torch==[\w.]+", pins[0]), pins
    assert "grep -E '^torch==' requirements.txt" in run
    # requirements.txt is in the image before it is installed
    order = [(word, args) for word, args in instructions() if word in ("COPY", "RUN")]
    first_install = next(i for i, (w, a) in enumerate(order) if w == "RUN" and a == run)
    copied_before = [
        src for w, a in order[:first_install] if w == "COPY" for src in copy_sources(a)[0]
    ]
    assert "requirements.txt" in copied_before


def test_port_8501_is_exposed_and_the_command_runs_the_app_there():
    assert [p.split("/")[0] for p in of("EXPOSE")] == [str(PORT)]
    cmds = of("CMD")
    assert len(cmds) == 1
    assert exec_form(cmds[0]) == [
        "streamlit",
        "run",
        "app.py",
        f"--server.port={PORT}",
        "--server.address=0.0.0.0",
    ]


def test_the_image_limits_mallocs_heaps():
    """Two glibc heaps for all the server's threads: set in the environment, the only place
    glibc reads it early enough (docs/hosting.md)."""
    assert re.search(r"^\s*MALLOC_ARENA_MAX=2\b", DOCKERFILE.read_text(), re.MULTILINE)


def test_the_app_runs_as_a_user_of_its_own():
    steps = instructions()
    users = [(i, args) for i, (word, args) in enumerate(steps) if word == "USER"]
    assert users, "no USER: the app would run as root"
    last, user = users[-1]
    name = user.split(":")[0]
    assert name not in ("root", "0"), user
    cmd_at = max(i for i, (word, _) in enumerate(steps) if word == "CMD")
    assert last < cmd_at
    created = [a for w, a in steps[:last] if w == "RUN" and re.search(r"\b(useradd|adduser)\b", a)]
    assert any(re.search(rf"\b{re.escape(name)}\b", a) for a in created), (
        f"user {name!r} is never created"
    )


def test_the_health_check_asks_streamlits_health_endpoint_with_python():
    checks = of("HEALTHCHECK")
    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD")
    argv = exec_form(command.strip())
    assert argv[:2] == ["python", "-c"], "slim has no curl: the check runs Python"
    assert HEALTH in argv[2]


def test_every_copied_file_exists_and_reaches_the_build_context():
    ignored = [
        line.strip().lstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in ignored), "negations are not checked here"

    def excluded(rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in ignored:
            if pattern.startswith("**/"):
                tail = pattern[3:]
                if any(fnmatch.fnmatch(part, tail) for part in parts) or fnmatch.fnmatch(
                    parts[-1], tail
                ):
                    return True
            elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
                return True
        return False

    copies = of("COPY")
    assert copies
    for args in copies:
        assert "--from" not in args, "one stage: nothing is copied from another"
        sources, _ = copy_sources(args)
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: no such file in the repository"
            files = (
                [path]
                if path.is_file()
                else [
                    f
                    for f in path.rglob("*")
                    if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"
                ]
            )
            assert files, f"COPY {source}: nothing to copy"
            for f in files:
                rel = f.relative_to(ROOT).as_posix()
                assert not excluded(rel), f"{rel} is copied but .dockerignore leaves it out"


def test_the_app_and_everything_it_imports_from_the_repository_are_copied():
    copied = {source.rstrip("/") for args in of("COPY") for source in copy_sources(args)[0]}
    assert {"app.py", ".streamlit", "pages", "ui", "bbb_core"} <= copied, copied
    assert (ROOT / ".streamlit" / "config.toml").is_file()
    # a top-level package of this repository that the app's code imports must be in the image
    code = [
        ROOT / "app.py",
        *(ROOT / "pages").glob("*.py"),
        *(ROOT / "ui").glob("*.py"),
        *(ROOT / "bbb_core").rglob("*.py"),
    ]
    imported = set()
    for path in code:
        for match in re.finditer(r"^\s*(?:from|import)\s+(\w+)", path.read_text(), re.M):
            name = match.group(1)
            if (ROOT / name).is_dir() or (ROOT / f"{name}.py").is_file():
                imported.add(name)
    assert imported <= copied, f"imported but not copied: {sorted(imported - copied)}"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (the handler's API)
        body = b"ok" if self.status == 200 else b"not ready"
        self.send_response(self.status if self.path == "/_stcore/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (None, False)])
def test_the_health_check_passes_on_ok_only(status, healthy):
    argv = exec_form(of("HEALTHCHECK")[0].partition("CMD")[2].strip())
    port = _free_port()
    code = argv[2].replace(f"localhost:{PORT}", f"127.0.0.1:{port}")
    server = None
    if status is not None:
        handler = type("Handler", (_Health,), {"status": status})
        server = http.server.HTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    assert (done.returncode == 0) == healthy, done.stderr.decode()[-300:]
