"""Streamlit-only helpers shared by BBB Explorer's pages.

- `params`: the table of every setting and its conversions: widget values <-> `RunConfig` <-> URL.
- `widgets`: the sidebar controls, bound to session state and the URL, that make a `RunConfig`.
- `live`: the session's run (start, continue, step, pause, reset) and the
  `st.fragment(run_every=...)` loop that redraws the charts from it.
- `runs`: the runs shared by every session (a bounded store) and the worker pool that trains
  them a slice at a time, in turn (no Streamlit).
- `presets`: named teaching scenarios, each a `RunConfig` with a one-line story.
- `exports`: the downloads (config JSON, plotted data and metrics as CSV) and the metrics table.
- `routing`: makes every page run inside `app.py`'s navigation.
- `upload`: your own data: the CSV uploader, its column pickers and preview, private to the session.
- `sweep`: the "Does more data help?" panel (a sweep of the training-set size, a point per frame).
- `priors`, `images`: the Priors and weights page's and the images page's own settings and sections.
- `bench`: `python -m ui.bench`, the knob-to-chart latency measured in a real browser.
- `load`: `python -m ui.load`, N real browser sessions at once: their times, the server's CPU
  and memory.

`bbb_core` never imports this package.
"""
