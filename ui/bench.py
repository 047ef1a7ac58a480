"""Knob-to-chart latency of the live pages, measured in a real browser.

    python -m ui.bench [--repeats 3] [--json bench_ui.json]

Starts `streamlit run app.py` on a free port, opens each live page (regression, classification)
with its default settings in the system's Chromium (Playwright), waits for training to finish,
then moves the KL weight slider one step down at a time (1 -> 0.5 -> 0.2 ...: a value no earlier
move trained, so no move finds its run already trained in the server's store of shared runs)
and measures, in the browser's clock, from the key press to

- the first updated chart: a figure in the live panel, drawn, whose data differ from every
  figure shown before the key press;
- finished: the status line says "Finished" for the new run;
- the final view: the metrics table is drawn, every chart in the live panel is laid out and the
  status says "Finished": what the user ends with. The app writes "Finished" with the final
  view; an app that wrote it as training ended, before redrawing the charts with all prediction
  samples (as this one did before), shows the difference between the two.

Each move also records the server process's CPU seconds from the key press to a second after
the final view, and, once the browser is done, the CPU seconds this process takes to train the
retrained model (BBB) alone, as the command line does: what a fresh run costs the server next to
its training. Prints a table (median, min and max over the repeats) and optionally writes every
sample as JSON.
Other processes on the machine slow these numbers down: the load average is printed with them.
`serve()` and `launch_browser()` are shared with tests/test_browser.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ui.params import KL_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 900}
PAGES = {"regression": "fit", "classification": "probability"}  # page -> its main chart

# Resolves [t_key, t_first_chart, t_finished, t_final, status] (ms, performance.now()) once the
# new run (its status said "Training") has drawn a chart whose data differ from every chart shown
# before the key press (signatures taken by ARM_JS), finished, and drawn its final view.
MEASURE_JS = """async ([page, timeoutMs]) => {
  const live = `.st-key-${page}-live`, status = `.st-key-${page}-status`;
  const start = performance.now();
  const fresh = () => Array.from(document.querySelectorAll(live + ' .js-plotly-plot')).some(
    (gd) => gd._fullLayout && gd.offsetHeight > 0 && window.__bbbOld.indexOf(sig(gd)) < 0);
  const state = () => {
    const e = document.querySelector(status);
    return e ? e.innerText.trim() : '';
  };
  const final = () => document.querySelector(live + " [data-testid='stDataFrame']") !== null &&
    Array.from(document.querySelectorAll(live + ' .js-plotly-plot')).every((gd) => gd._fullLayout);
  let first = null, done = null, restarted = false;
  while (performance.now() - start < timeoutMs) {
    if (state().startsWith('Training')) restarted = true;  // the new run is on screen
    if (restarted && first === null && fresh()) first = performance.now();
    if (first !== null && done === null && state().startsWith('Finished')) done = performance.now();
    if (done !== null && state().startsWith('Finished') && final()) {
      return [window.__bbbKey, first, done, performance.now(), state()];
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return [window.__bbbKey, first, done, null, ''];
}"""

# A cheap signature of a plotly chart's data: trace names, lengths and a few values.
SIG_JS = """() => {
  const part = (v) => {
    if (!v) return null;
    if (v.bdata) return v.bdata.length + ':' + v.bdata.slice(-64);  // plotly's binary arrays
    const r = v[v.length >> 1];
    return [v.length, Array.isArray(r) ? r[r.length >> 1] : r];
  };
  window.sig = (gd) => JSON.stringify((gd.data || []).map((t) => [t.name, part(t.z || t.y)]));
}"""

ARM_JS = """(page) => {
  window.__bbbOld = Array.from(document.querySelectorAll(`.st-key-${page}-live .js-plotly-plot`))
    .map((gd) => sig(gd));
  window.__bbbKey = null;
  document.addEventListener('keydown', () => { window.__bbbKey = performance.now(); },
                            {capture: true, once: true});
}"""


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and its living descendants (a proxy's workers, any process the server started)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])  # ppid (field 4)
            except (OSError, ValueError, IndexError):
                continue  # ended meanwhile
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its descendants so far (/proc/<pid>/stat:
    the living ones' own, and the ended ones' that were waited for)."""
    total = 0
    for i, member in enumerate(process_tree(pid)):
        try:
            fields = _stat(member)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        if i == 0:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime: children waited for
    return total / _TICKS


def training_alone(page: str, params: dict[str, str], kinds: tuple[str, ...] = ()) -> float:
    """CPU seconds this process takes to train, from scratch, what a tab of `page` opened with
    URL `params` trains (`kinds`, or the page's models), one model after the other on one thread
    as the command line trains: what the server's CPU for a fresh run is measured against."""
    from bbb_core import Trainer, make_dataset
    from bbb_core.config import CLASSIFICATION_DATASETS, REGRESSION_DATASETS
    from bbb_core.process import configure_threads
    from ui.params import config_from_values, read_url
    from ui.widgets import kinds_from

    datasets = REGRESSION_DATASETS if page == "regression" else CLASSIFICATION_DATASETS
    values, _ = read_url(params, page, datasets)
    cfg = replace(config_from_values(values), device="cpu")
    dataset = make_dataset(cfg.data, cfg.seed)
    configure_threads(1)  # as the app trains its toy networks
    trainers = [
        Trainer(replace(cfg, model=replace(cfg.model, kind=kind)), dataset)
        for kind in kinds or kinds_from(values)
    ]
    for trainer in trainers:  # first use (lazy initialisation) is not training
        Trainer(replace(trainer.cfg, train=replace(cfg.train, epochs=5)), dataset).run()
    start = time.thread_time()
    for trainer in trainers:
        trainer.run()
    return time.thread_time() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(
    log_path: Path | None = None,
    timeout: float = 60.0,
    options: dict[str, str] | None = None,
    on_start=None,
) -> Iterator[str]:
    """Run `streamlit run app.py` on a free port; yield its URL; stop it afterwards.

    options: more Streamlit settings (`{"runner.postScriptGC": "false"}`); on_start: called with
    the server's `subprocess.Popen` once it answers (to watch its CPU time and memory).
    """
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    for key, value in (options or {}).items():
        cmd += [f"--{key}", value]
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(url, server, timeout):
            raise RuntimeError(f"streamlit did not start on port {port}")
        if on_start is not None:
            on_start(server)
        yield url
    finally:
        stop(server)
        if log is not subprocess.DEVNULL:
            log.close()


def wait_healthy(url: str, process: subprocess.Popen, timeout: float) -> bool:
    """Wait until `url`/_stcore/health answers 200 (True), `process` ends or `timeout` seconds
    pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Ask `process` to end; kill it if it has not within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def launch_browser(playwright):
    """The system's Chromium (never a downloaded one)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# True once the status line of the page whose status selector is given says "Finished"
FINISHED_JS = """(sel) => { const e = document.querySelector(sel);
  return e !== null && e.innerText.trim().startsWith('Finished'); }"""


def status_selector(page: str) -> str:
    return f".st-key-{page}-status"


def wait_finished(tab, page: str, timeout_ms: float = 60_000) -> None:
    tab.wait_for_function(FINISHED_JS, arg=status_selector(page), timeout=timeout_ms)


def measure_page(
    tab, url: str, page: str, repeats: int, timeout_ms: float, pid: int | None = None
) -> list[dict]:
    """Open `page` with defaults, then time `repeats` KL-weight moves (see the docstring). With
    the server's `pid`, each move also records the server's CPU seconds from the key press to a
    second after the final view, and BBB's training for the new weight alone."""
    tab.goto(f"{url}/{page}")
    t0 = time.perf_counter()
    wait_finished(tab, page, timeout_ms)
    first_load = time.perf_counter() - t0
    tab.wait_for_timeout(1000)
    samples = []
    slider = tab.locator(f".st-key-{page}-kl input[type=range]")
    weights = [w for w in KL_WEIGHTS if w <= 1.0][::-1]  # 1, 0.5, 0.2, ...
    for i in range(min(repeats, len(weights) - 1)):
        key = "ArrowLeft"
        tab.evaluate(SIG_JS)
        tab.evaluate(ARM_JS, page)
        slider.focus()
        cpu = cpu_seconds(pid) if pid else 0.0
        tab.keyboard.press(key)
        t_key, t_first, t_done, t_final, status = tab.evaluate(MEASURE_JS, [page, timeout_ms])
        if None in (t_key, t_first, t_done, t_final):
            raise RuntimeError(f"{page}: no final view within {timeout_ms / 1000:.0f} s")
        tab.wait_for_timeout(1000)  # let the finished view settle
        cpu = cpu_seconds(pid) - cpu if pid else None
        samples.append(
            {
                "page": page,
                "change": f"KL weight {weights[i]:g} -> {weights[i + 1]:g}",
                "first_chart_s": (t_first - t_key) / 1000,
                "finished_s": (t_done - t_key) / 1000,
                "final_view_s": (t_final - t_key) / 1000,
                "status": status.strip(),
                "first_load_s": first_load,
                "server_cpu_s": cpu,
            }
        )
    return samples


def add_training_alone(samples: list[dict]) -> None:
    """Each move's retrained model (BBB: only it depends on the KL weight) trained alone, in
    this process, once the server is done: `alone_cpu_s`, next to the move's `server_cpu_s`."""
    for sample in samples:
        weight = sample["change"].rsplit("-> ", 1)[1]
        sample["alone_cpu_s"] = training_alone(sample["page"], {"kl": weight}, ("bbb",))


TIMES = {"first_chart_s": "first chart", "finished_s": "finished", "final_view_s": "final view"}


def _summary(samples: list[dict]) -> list[tuple]:
    rows = []
    for page in PAGES:
        mine = [s for s in samples if s["page"] == page]
        if not mine:
            continue
        cells = []
        for key in TIMES:
            values = [s[key] for s in mine]
            cells.append(f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})")
        rows.append((page, len(mine), *cells))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="slider moves per page (<= 10)")
    parser.add_argument("--pages", nargs="+", default=list(PAGES), choices=list(PAGES))
    parser.add_argument("--json", type=Path, help="write every sample to this file")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per measurement")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: install Chromium first", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    samples: list[dict] = []
    server: dict = {}
    with serve(on_start=lambda proc: server.update(pid=proc.pid)) as url, sync_playwright() as p:
        browser = launch_browser(p)
        tab = browser.new_page(viewport=VIEWPORT)
        tab.goto(url)  # warm the server: imports, first session
        tab.get_by_role("heading", name="BBB Explorer").wait_for(timeout=args.timeout * 1000)
        for page in args.pages:
            samples += measure_page(
                tab, url, page, args.repeats, args.timeout * 1000, server["pid"]
            )
        browser.close()
    add_training_alone(samples)
    load_after = os.getloadavg()
    print(f"CPU cores: {os.cpu_count()}; load average before {load_before[0]:.1f}, "
          f"after {load_after[0]:.1f} (1 min)")  # fmt: skip
    heads = "".join(f"{name + ' s (min-max)':<26}" for name in TIMES.values())
    print(f"{'page':<16}{'moves':>6}  {heads}")
    for page, n, *cells in _summary(samples):
        print(f"{page:<16}{n:>6}  " + "".join(f"{c:<26}" for c in cells))
    for s in samples:
        print(f"  {s['page']}: {s['change']}: {s['status']}; server CPU {s['server_cpu_s']:.2f} s, "
              f"BBB trained alone {s['alone_cpu_s']:.2f} s")  # fmt: skip
    if args.json:
        record = {"cpu_count": os.cpu_count(), "load_before": load_before,
                  "load_after": load_after, "samples": samples}  # fmt: skip
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
