"""Streamlit-only helpers shared by BBB Explorer's pages.

- `widgets`: sidebar controls whose values live in session state and in the URL, turned into a
  `bbb_core.RunConfig`.
- `live`: the per-session training run (start, continue, step, pause, reset) and the
  `st.fragment(run_every=...)` loop that advances it and redraws the charts.
- `presets`: named teaching scenarios, each a `RunConfig` with a one-line story.
- `exports`: the downloads (config JSON, plotted data and metrics as CSV).
- `bench`: `python -m ui.bench`, the knob-to-chart latency measured in a real browser.

`bbb_core` never imports this package.
"""
