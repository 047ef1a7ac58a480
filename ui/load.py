"""The app under load: N real browser sessions opening a live page at once.

    python -m ui.load [--sessions 1 4 8] [--link same|distinct] [--page regression]
                      [--heavy] [--set runner.postScriptGC=false] [--settle 60] [--json load.json]

Starts `streamlit run app.py` (with the project's `.streamlit/config.toml`, plus any `--set`
options) on a free port, opens the page once in a first tab and closes it (imports and first
use: the server's idle level is measured after that), then for each wave of N sessions opens N
browser contexts of the system's Chromium (one per visitor: separate cookies, so separate
Streamlit sessions), points them all at the page at once, and waits for every tab's status line
to say "Finished" (the app writes it with the final view). The link is the page's default with
one seed for every tab (`same`: the class opening the lecturer's link) or a different seed per
tab (`distinct`). Every wave opens seeds no earlier wave opened, so no wave finds its runs
already trained in the server's store of shared runs.

With `--proxy`, the tabs reach the app through nginx caching Streamlit's frontend files (as
docs/hosting.md serves a class; `ui.proxy`; nginx must be installed), and each wave also reports
nginx's CPU seconds: what serving a class costs in all is the two together.

With `--heavy`, each wave also opens, first, a tab on the heaviest link the regression page
accepts (the widest network, the most points, samples, epochs and the ensemble: days of
training), presses Play there, and keeps it training while the wave's tabs open: how much one
visitor's huge run slows everyone else's.

Per wave it reports each tab's time from the wave's start to its final view (median and max),
the server process's CPU seconds during the wave (user + system, from /proc), its peak resident
memory, the exceptions shown in any tab, and, after every tab of the wave has closed and
`--settle` seconds have passed, the server's memory again against its idle level. For a wave of
one tab it also trains, in this process after the wave, the models that tab's link trains (the
page's defaults with its seed), one after the other on one thread as `python -m bbb_core train`
does, and reports their CPU seconds: a fresh tab's server CPU against its training alone. Linux
only (it reads /proc). Other processes on the machine slow the numbers down: the load average is
printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ui.bench import (
    CHROMIUM,
    FINISHED_JS,
    VIEWPORT,
    cpu_seconds,
    free_port,
    launch_browser,
    serve,
    status_selector,
    training_alone,
)
from ui.proxy import nginx, nginx_binary

EXCEPTION = "[data-testid='stException']"


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MiB (/proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")


class PeakMemory:
    """Samples a process's resident memory every `interval` seconds in a thread; `peak` MiB."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.peak = rss_mb(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Wave:
    """One wave of `sessions` tabs and what it cost."""

    sessions: int
    link: str
    finished_s: list[float] = field(default_factory=list)  # per tab, wave start -> final view
    unfinished: int = 0  # tabs that did not finish within the timeout
    exceptions: int = 0  # exception boxes shown, over all tabs
    server_cpu_s: float = 0.0
    proxy_cpu_s: float | None = None  # with --proxy: nginx's master and worker
    peak_rss_mb: float = 0.0
    rss_after_close_mb: float = 0.0  # `settle` seconds after every tab closed
    alone_cpu_s: float | None = None  # one-tab waves: the tab's models trained alone (CPU s)

    def summary(self) -> str:
        times = self.finished_s or [float("nan")]
        alone = "" if self.alone_cpu_s is None else f"{self.alone_cpu_s:.2f}"
        proxy = "" if self.proxy_cpu_s is None else f"{self.proxy_cpu_s:.2f}"
        return (
            f"{self.sessions:>8} {self.link:>9} {statistics.median(times):>10.1f} "
            f"{max(times):>8.1f} {self.unfinished:>10} {self.server_cpu_s:>11.1f} "
            f"{proxy:>11} {self.peak_rss_mb:>9.0f} {self.rss_after_close_mb:>12.0f} "
            f"{self.exceptions:>6} {alone:>12}"
        )


HEADER = (
    f"{'sessions':>8} {'link':>9} {'median s':>10} {'max s':>8} {'unfinished':>10} "
    f"{'server CPU s':>11} {'proxy CPU s':>11} {'peak MiB':>9} {'after close':>12} "
    f"{'errors':>6} {'alone CPU s':>12}"
)


WAVE_SEEDS = 100  # wave w's tabs open seeds from 1 + WAVE_SEEDS * w on (at most 32 tabs)
WARM_SEED = 99_999  # the first tab's seed (no wave opens it)
HEAVY = {  # the heaviest valid link of the regression page: estimated at days, waits for Play
    "epochs": "20000",
    "hidden": "1024,1024,1024,1024",
    "n": "2000",
    "batch": "8",
    "train_samples": "16",
    "show_ensemble": "1",
    "ensemble": "10",
}


def page_url(url: str, page: str, link: str, index: int, wave: int = 0) -> str:
    """The link tab `index` of wave `wave` opens: the page's defaults with one seed for the
    wave (`same`) or one seed per tab (`distinct`), never a seed an earlier wave opened."""
    return f"{url}/{page}?seed={_seed(link, index, wave)}"


def _seed(link: str, index: int, wave: int) -> int:
    return 1 + WAVE_SEEDS * wave + (index if link == "distinct" else 0)


def heavy_url(url: str, page: str) -> str:
    return f"{url}/{page}?" + "&".join(f"{k}={v}" for k, v in HEAVY.items())


def open_heavy(browser, url: str, page: str):
    """A tab on the heavy link, playing (its context is returned, to close it)."""
    ctx = browser.new_context(viewport=VIEWPORT)
    tab = ctx.new_page()
    tab.goto(heavy_url(url, page))
    tab.get_by_role("button", name="Play").click(timeout=120_000)
    tab.locator(status_selector(page)).filter(has_text="Training").wait_for(timeout=120_000)
    return ctx


def run_wave(
    browser,
    url: str,
    page: str,
    sessions: int,
    link: str,
    pid: int,
    timeout_s: float,
    settle_s: float,
    number: int = 0,
    heavy: bool = False,
    proxy_pid: int | None = None,
) -> Wave:
    """Open `sessions` tabs at once (after a heavy one, with `heavy`), wait for their final
    views, close them, let it settle. With `proxy_pid`, also measure that process's CPU (and its
    workers')."""
    wave = Wave(sessions, link + ("+heavy" if heavy else ""))
    contexts = [open_heavy(browser, url, page)] if heavy else []
    contexts += [browser.new_context(viewport=VIEWPORT) for _ in range(sessions)]
    tabs = [ctx.new_page() for ctx in contexts[len(contexts) - sessions :]]
    cpu0 = cpu_seconds(pid)
    proxy0 = cpu_seconds(proxy_pid) if proxy_pid else 0.0
    with PeakMemory(pid) as memory:
        start = time.perf_counter()
        for i, tab in enumerate(tabs):  # navigations proceed in parallel in the browser
            tab.goto(page_url(url, page, link, i, number), wait_until="commit")
        pending = set(range(sessions))
        deadline = start + timeout_s
        while pending and time.perf_counter() < deadline:
            for i in sorted(pending):
                if tabs[i].evaluate(FINISHED_JS, status_selector(page)):
                    wave.finished_s.append(time.perf_counter() - start)
                    pending.discard(i)
            time.sleep(0.05)
        wave.unfinished = len(pending)
        wave.exceptions = sum(c.pages[0].locator(EXCEPTION).count() for c in contexts)
        wave.server_cpu_s = cpu_seconds(pid) - cpu0
        if proxy_pid:
            wave.proxy_cpu_s = cpu_seconds(proxy_pid) - proxy0
        wave.peak_rss_mb = memory.peak
    for ctx in contexts:
        ctx.close()
    time.sleep(settle_s)
    wave.rss_after_close_mb = rss_mb(pid)
    return wave


def _cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), as lscpu prints it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def _options(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --set takes KEY=VALUE; got {pair!r}")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.load", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--link", choices=("same", "distinct"), default="same")
    parser.add_argument("--page", choices=("regression", "classification"), default="regression")
    parser.add_argument(
        "--heavy", action="store_true", help="a tab training the heaviest link during each wave"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Streamlit option for the server, e.g. runner.postScriptGC=false",
    )
    parser.add_argument(
        "--proxy", action="store_true", help="reach the app through nginx caching its frontend"
    )
    parser.add_argument("--settle", type=float, default=60.0, help="seconds after closing tabs")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per wave")
    parser.add_argument("--json", type=Path, help="write the waves to this file")
    args = parser.parse_args(argv)
    if not all(1 <= n <= 32 for n in args.sessions):
        parser.error("--sessions: each wave has 1 to 32 sessions")
    if not Path(CHROMIUM).exists() or not Path("/proc/self/stat").exists():
        print(f"needs Linux and {CHROMIUM}", file=sys.stderr)
        return 2
    if args.proxy and nginx_binary() is None:
        print("--proxy needs nginx (Debian: apt-get install nginx-light)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    options = _options(args.set)
    server: dict = {}
    load_before = os.getloadavg()
    with (
        serve(options=options, on_start=lambda proc: server.update(pid=proc.pid)) as app_url,
        contextlib.ExitStack() as stack,
    ):
        pid, url, proxy_pid = server["pid"], app_url, None
        if args.proxy:
            port = free_port()
            proxy_pid = stack.enter_context(nginx(app_url, port)).pid
            url = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = launch_browser(p)
            warm = browser.new_page(viewport=VIEWPORT)
            warm.goto(f"{url}/{args.page}?seed={WARM_SEED}")  # imports, first use: not a wave
            warm.wait_for_function(FINISHED_JS, arg=status_selector(args.page), timeout=120_000)
            warm.close()
            time.sleep(5)
            idle_mb = rss_mb(pid)
            waves = [
                run_wave(
                    browser,
                    url,
                    args.page,
                    n,
                    args.link,
                    pid,
                    args.timeout,
                    args.settle,
                    number,
                    args.heavy,
                    proxy_pid,
                )
                for number, n in enumerate(args.sessions)
            ]
            browser.close()
    for number, wave in enumerate(waves):  # the server is idle now (its waves settled)
        if wave.sessions == 1 and not args.heavy:
            wave.alone_cpu_s = training_alone(args.page, {"seed": str(_seed(args.link, 0, number))})
    load_after = os.getloadavg()
    options_text = f"{options or 'as configured'}" + (
        "; tabs through nginx caching the frontend" if args.proxy else ""
    )
    print(f"{_cpu_model()}, {os.cpu_count()} cores; load average before "
          f"{load_before[0]:.1f}, after {load_after[0]:.1f}; server options {options_text}; "
          f"page {args.page}; idle server memory {idle_mb:.0f} MiB")  # fmt: skip
    print(HEADER)
    for wave in waves:
        print(wave.summary())
    if args.json:
        record = {
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d"),
            "heavy": args.heavy,
            "proxy": args.proxy,
            "load_before": load_before,
            "load_after": load_after,
            "options": options,
            "page": args.page,
            "idle_rss_mb": idle_mb,
            "waves": [asdict(w) for w in waves],
        }
        args.json.write_text(json.dumps(record, indent=2))
    return 0 if all(w.unfinished == 0 and w.exceptions == 0 for w in waves) else 1


if __name__ == "__main__":
    raise SystemExit(main())
