"""The load benchmark (`python -m ui.load`): its /proc readings, its links, and one small wave
against the running app in real Chromium (marked browser)."""

from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys

import pytest
from browser_helpers import require_browser

from ui import load
from ui.bench import process_tree
from ui.proxy import nginx_binary


def test_cpu_seconds_and_memory_of_this_process():
    before = load.cpu_seconds(os.getpid())
    total = sum(i * i for i in range(2_000_000))  # burn some CPU
    assert total > 0
    assert load.cpu_seconds(os.getpid()) > before
    assert 10 < load.rss_mb(os.getpid()) < 100_000


def test_cpu_seconds_count_the_processes_the_server_started():
    """A server's children (a proxy's workers, any helper process) are part of its cost."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
    child = subprocess.Popen(
        [sys.executable, "-c", burn + "print('done', flush=True)\ntime.sleep(30)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        before = load.cpu_seconds(os.getpid())
        assert child.stdout.readline().strip() == "done"  # it burned its 0.5 s and lives on
        assert child.pid in process_tree(os.getpid())
        assert load.cpu_seconds(os.getpid()) - before >= 0.4
    finally:
        child.kill()
        child.wait()


def test_training_alone_trains_what_the_link_asks_for(monkeypatch):
    """`training_alone` trains the models a tab of the link trains (the page's defaults, its
    seed and settings), each from scratch for its full epochs, after a short warm-up."""
    from bbb_core import Trainer
    from ui import bench

    ran: list = []
    monkeypatch.setattr(Trainer, "run", lambda self: ran.append(self.cfg))
    assert bench.training_alone("regression", {"seed": "7", "kl": "0.5"}) >= 0.0
    warm, timed = ran[:2], ran[2:]
    assert [c.model.kind for c in timed] == ["bbb", "standard"]
    assert all(c.seed == 7 and c.train.kl_weight == 0.5 and c.device == "cpu" for c in timed)
    assert timed[0].data.name == "blundell" and timed[0].train.epochs > warm[0].train.epochs
    ran.clear()
    bench.training_alone("classification", {"seed": "3"}, ("bbb",))
    assert [c.model.kind for c in ran] == ["bbb", "bbb"] and ran[1].data.name == "moons"


def test_peak_memory_sees_a_temporary_allocation():
    with load.PeakMemory(os.getpid(), interval=0.01) as memory:
        base = load.rss_mb(os.getpid())
        # 200 MiB of fresh pages, touched: a new mapping (not heap memory the process may
        # already hold resident), so the resident size must grow by about that much
        block = mmap.mmap(-1, 200 * 2**20)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        import time

        deadline = time.monotonic() + 10  # the sampler thread may be slow to get a turn
        while memory.peak <= base + 150 and time.monotonic() < deadline:
            time.sleep(0.02)
        block.close()
    assert memory.peak > base + 150


def test_each_wave_opens_seeds_no_earlier_wave_opened():
    same = [load.page_url("http://h", "regression", "same", i, wave=1) for i in range(4)]
    assert same == ["http://h/regression?seed=101"] * 4
    distinct = {load.page_url("http://h", "regression", "distinct", i, wave=w) for w in range(3)
                for i in range(32)}  # fmt: skip
    assert len(distinct) == 3 * 32
    first = load.page_url("http://h", "regression", "same", 0)
    assert first not in {load.page_url("http://h", "regression", "same", 0, wave=w)
                         for w in range(1, 5)}  # fmt: skip
    assert f"seed={load.WARM_SEED}" not in " ".join(distinct)


def test_options_take_key_value_pairs():
    assert load._options(["runner.postScriptGC=false"]) == {"runner.postScriptGC": "false"}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        load._options(["runner.postScriptGC"])


@pytest.mark.browser
def test_one_small_wave_finishes_without_errors(tmp_path):
    """A wave of one tab, through the caching proxy where nginx is installed (CI installs it):
    the app as a class reaches it, and the proxy's CPU counted beside the server's."""
    require_browser()
    proxy = nginx_binary() is not None
    out = tmp_path / "load.json"
    args = ["--sessions", "1", "--settle", "0", "--json", str(out)] + ["--proxy"] * proxy
    assert load.main(args) == 0
    record = json.loads(out.read_text())
    (wave,) = record["waves"]
    assert wave["sessions"] == 1 and wave["unfinished"] == 0 and wave["exceptions"] == 0
    assert len(wave["finished_s"]) == 1 and wave["server_cpu_s"] > 0
    assert wave["peak_rss_mb"] >= record["idle_rss_mb"] > 0
    assert record["proxy"] is proxy
    if proxy:
        assert wave["proxy_cpu_s"] > 0
    else:
        assert wave["proxy_cpu_s"] is None
