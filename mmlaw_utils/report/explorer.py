"""The interactive explorer of the cached losses (``notebooks/explore.ipynb``; JupyterLab, Voila, Binder).

Widgets are ipywidgets; the frontier plot is a plotly ``FigureWidget``. Plotly was chosen over bokeh
because its FigureWidget is itself an ipywidget (rendered through anywidget), so one kernel-side
object works unchanged in JupyterLab, in Voila and on Binder without a bokeh server or an extra
Jupyter extension, hover text is built in, and a selection change only rewrites one small trace.

Every number shown comes from ``mmlaw_utils.analysis`` (``selection``, ``oracle``, ``subsets``,
``mixture``); this module loads a profile's committed loss matrix, lays out the widgets and draws.
``Explorer.numbers`` holds the numbers of the current selection so that tests can compare them with
the library without a browser; the page shows the same values (``data-value`` holds the full float).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.groups import CROSS_FAMILY, SAME_FAMILY
from mmlaw_utils.analysis.lossmatrix import LossMatrix
from mmlaw_utils.analysis.oracle import pair_oracle_losses
from mmlaw_utils.analysis.granularity import SegmentLosses, segment_losses_from_frame, segment_winners
from mmlaw_utils.analysis.selection import (HeldoutMixture, SelectionNumbers, heldout_mixture, selection_numbers,
                                            text_gains, win_share_table)
from mmlaw_utils.analysis.subsets import subset_frontier
from mmlaw_utils.report.units import display_unit, short_name
from mmlaw_utils.scoring.segment_files import read_segment_table, readable_segmentation

DEFAULT_PROFILE = "minipool"
TEXTS_SHOWN = 200  # texts listed by gain (the rest are one scroll of a long list away from any use)
TEXT_CHARS_SHOWN = 4000
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


@dataclass
class ExplorerData:
    """One profile's loss matrix and what the explorer shows beside it (losses in nats per text)."""

    profile: str
    lm: LossMatrix
    domains: np.ndarray | None = None  # one label per text, or None when the text set has none
    dataset: str | None = None  # where the texts themselves are (None: not available)
    segments: SegmentLosses | None = None  # word (else sentence, line) segments, when data/<profile>/segments/ has them
    frontier: pd.DataFrame | None = None  # exact any-size frontier (subset_frontier with model_names)
    _L: np.ndarray | None = field(default=None, repr=False)
    _pairs: np.ndarray | None = field(default=None, repr=False)
    _texts: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def L(self) -> np.ndarray:
        """K x N losses (nats per text)."""
        if self._L is None:
            self._L = self.lm.to_array()
        return self._L

    @property
    def arms(self) -> np.ndarray | None:
        """Arm of each model, or None when the pool has no arms."""
        return self.lm.models["arm"].to_numpy(dtype=str) if "arm" in self.lm.models.columns else None

    def pair_losses(self) -> np.ndarray:
        """K x K pair oracle losses (diagonal: single models), nats per text."""
        if self._pairs is None:
            self._pairs = pair_oracle_losses(self.L)
        return self._pairs

    def exact_frontier(self, time_limit_s: float = 60.0) -> pd.DataFrame:
        """The exact any-size frontier over all subsets (computed once)."""
        if self.frontier is None:
            self.frontier = subset_frontier(self.L, self.lm.params, model_names=self.lm.model_names,
                                            total_time_limit=time_limit_s)
        return self.frontier

    def text(self, column: int) -> str | None:
        """The text of column ``column`` of the loss matrix, or None when the text set is not available here."""
        if self.dataset is None:
            return None
        if self._texts is None:
            from mmlaw_utils.texts import load_texts

            try:
                self._texts = load_texts(self.dataset).set_index("text_id")
            except (OSError, ValueError):
                self.dataset = None
                return None
        text_id = self.lm.text_ids[column]
        return str(self._texts.at[text_id, "text"]) if text_id in self._texts.index else None


def profiles_with_losses() -> list[str]:
    """Profiles whose loss matrix is committed (``data_dir/loss_matrix.parquet`` exists), the default first."""
    from mmlaw_utils.config import available_profiles, load_profile

    found = [name for name in available_profiles() if (load_profile(name).data_dir / "loss_matrix.parquet").is_file()]
    return sorted(found, key=lambda name: (name != DEFAULT_PROFILE, name))


def read_segments(data_dir: Path, lm: LossMatrix) -> SegmentLosses | None:
    """The readable segmentation's losses of ``lm``'s models that have segment files, or None when there are none."""
    segmentation = readable_segmentation(data_dir)
    if segmentation is None:
        return None
    frame = read_segment_table(data_dir, segmentation, lm.model_names)
    present = set(frame["model"].astype(str))
    models = [m for m in lm.model_names if m in present]
    return segment_losses_from_frame(frame, segmentation, models, lm.text_ids) if models else None


def load_explorer_data(profile: str = DEFAULT_PROFILE, *, every_arm: bool = False) -> ExplorerData:
    """A profile's committed loss matrix (``every_arm``: every arm's score caches, as notebook 09 reads them)."""
    from mmlaw_utils.config import load_profile
    from mmlaw_utils.scoring.assemble import load_loss_matrix
    from mmlaw_utils.texts import text_field

    settings = load_profile(profile)
    local = Path(settings.dataset).suffix != "" and Path(settings.dataset).is_file()
    if every_arm:
        from mmlaw_utils.report.arms import scored_loss_matrix

        lm, labels = scored_loss_matrix(profile)
        domains = labels["domain"].to_numpy(dtype=object)
    else:
        lm = load_loss_matrix(settings.data_dir)
        found = text_field(settings.dataset, lm.text_ids, "domain") if local else None
        domains = None if found is None else np.asarray(found, dtype=object)
    return ExplorerData(profile=profile, lm=lm, domains=domains, dataset=settings.dataset if local else None,
                        segments=read_segments(settings.data_dir, lm))


def _value(x: float, digits: int = 3, css: str = "") -> str:
    """A number shown to ``digits`` decimals, the full float in ``data-value`` (read by the browser test)."""
    return f'<span class="mmlaw-{css}" data-value="{float(x)!r}">{x:,.{digits}f}</span>'


def numbers_html(data: ExplorerData, numbers: SelectionNumbers, mixture: HeldoutMixture | None, unit: float,
                 unit_name: str) -> str:
    """The selection's numbers as an HTML table (losses in nats per text); ``mixture`` None: still fitting."""
    names = data.lm.model_names
    rows = [
        ("models", f'<span class="mmlaw-size">{len(numbers.members)}</span>'),
        (f"total P ({unit_name})", _value(numbers.params / unit, 4, "params")),
        ("oracle loss, eq. 4 (nats/text)", _value(numbers.oracle_loss, 3, "oracle-loss")),
        (f"best member alone: {html.escape(short_name(names[numbers.best_member]))}",
         _value(numbers.best_member_loss, 3, "best-member-loss")),
        ("oracle gain over the best member (nats/text)", _value(numbers.gain, 3, "gain")),
        ("Bayesian mixture, uniform weights (nats/text)", _value(numbers.mixture_uniform, 3, "mixture-uniform")),
        ("held-out half: best member / oracle / mixture with EM weights fitted on the other half",
         "<i>fitting…</i>" if mixture is None else " / ".join([
             _value(mixture.best_member, 3, "heldout-best"), _value(mixture.oracle, 3, "heldout-oracle"),
             _value(mixture.mixture_fitted, 3, "mixture-fitted")])),
    ]
    body = "".join(f"<tr><td>{label}</td><td style='text-align:right'>{value}</td></tr>" for label, value in rows)
    return f"<table class='mmlaw-numbers'>{body}</table>"


def shares_html(data: ExplorerData, shares: pd.DataFrame) -> str:
    """Win shares (per cent of texts) of each member, overall and per domain, as an HTML table."""
    names = data.lm.model_names
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["member", *shares.columns])
    body = "".join(
        "<tr><td>" + html.escape(short_name(names[row])) + "</td>"
        + "".join(f"<td style='text-align:right'>{100 * v:.1f}%</td>" for v in shares.loc[row]) + "</tr>"
        for row in shares.index)
    return f"<b>Win share</b> (texts each member wins in the oracle; ties split)<table class='mmlaw-shares'><tr>{head}</tr>{body}</table>"


def segments_html(text: str, segments: pd.DataFrame, colours: dict[str, str]) -> str:
    """``text`` with each segment (UTF-8 byte range) coloured by the member that wins it."""
    raw = text.encode("utf-8")
    parts, cursor = [], 0
    for start, end, winner in zip(segments["byte_start"], segments["byte_end"], segments["winner"]):
        start, end = int(start), int(end)
        if start > cursor:
            parts.append(html.escape(raw[cursor:start].decode("utf-8", errors="replace")))
        piece = html.escape(raw[start:end].decode("utf-8", errors="replace"))
        parts.append(f'<span title="{html.escape(short_name(winner))}" style="background:{colours[winner]}55">{piece}</span>')
        cursor = max(cursor, end)
    parts.append(html.escape(raw[cursor:].decode("utf-8", errors="replace")))
    legend = " ".join(f'<span style="background:{c}55">{html.escape(short_name(m))}</span>' for m, c in colours.items())
    return f"<div>segment winners: {legend}</div><pre style='white-space:pre-wrap'>{''.join(parts)}</pre>"


def _model_label(models: pd.DataFrame, row: int, unit: float) -> str:
    arm = f"{models['arm'].iloc[row]} · " if "arm" in models.columns else ""
    return f"{arm}{models['family'].iloc[row]} · {short_name(models['model'].iloc[row])} ({models['params'].iloc[row] / unit:.4g})"


class Explorer:
    """The explorer's widgets for one profile at a time; ``select(names)`` sets the models, as a click does."""

    def __init__(self, profile: str = DEFAULT_PROFILE, *, data: ExplorerData | None = None,
                 profiles: Sequence[str] | None = None, frontier_time_limit_s: float = 60.0):
        import ipywidgets as w

        self._w = w
        self.frontier_time_limit_s = frontier_time_limit_s
        self.profile = w.Dropdown(options=list(profiles) if profiles is not None else profiles_with_losses(),
                                  value=profile, description="Profile")
        self.every_arm = w.Checkbox(value=False, description="every arm", indent=False)
        self.models = w.SelectMultiple(options=[], rows=14, layout=w.Layout(width="34em"), description="Models")
        self.family = w.Dropdown(options=[], description="Family")
        self.best_button = w.Button(description="best single model")
        self.family_button = w.Button(description="whole family")
        self.budget = w.FloatLogSlider(description="budget P ≤", continuous_update=False, layout=w.Layout(width="30em"))
        self.budget_unit = w.Label()
        self.budget_button = w.Button(description="frontier point at budget")
        self.numbers_view = w.HTML()
        self.shares_view = w.HTML()
        self.texts = w.Select(options=[], rows=10, layout=w.Layout(width="34em"), description="Texts")
        self.text_view = w.HTML()
        self.status = w.HTML()
        self.figure = None
        self.numbers: SelectionNumbers | None = None
        self.mixture: HeldoutMixture | None = None  # of the current selection, once fitted
        self._mixtures: dict[tuple[int, ...], HeldoutMixture] = {}
        self._fitter = ThreadPoolExecutor(max_workers=1)
        self._fitting: Future | None = None
        self.shares: pd.DataFrame | None = None
        self.gains: pd.DataFrame | None = None
        self._hold = False
        self._box = None
        self.models.observe(lambda change: self._on_models(), names="value")
        self.texts.observe(lambda change: self._show_text(), names="value")
        self.profile.observe(lambda change: self.load(change["new"]), names="value")
        self.every_arm.observe(lambda change: self.load(self.profile.value), names="value")
        self.best_button.on_click(lambda _: self.select_best_single())
        self.family_button.on_click(lambda _: self.select_family(self.family.value))
        self.budget_button.on_click(lambda _: self.select_frontier_point(self.budget.value * self.unit))
        self.budget.observe(lambda change: self.select_frontier_point(change["new"] * self.unit), names="value")
        self.load(profile, data=data)

    # ------------------------------------------------------------------ loading and layout
    def load(self, profile: str, *, data: ExplorerData | None = None) -> None:
        """Show ``profile`` (or ``data``): options, frontier plot, and the best single model selected."""
        self.status.value = f"loading {html.escape(profile)} (every arm: the score caches are assembled, about a minute)" \
            if self.every_arm.value else f"loading {html.escape(profile)}"
        self.data = data if data is not None else load_explorer_data(profile, every_arm=self.every_arm.value)
        self._mixtures = {}
        lm = self.data.lm
        self.unit, self.unit_name = display_unit(float(lm.params.max()))
        self.budget_unit.value = self.unit_name
        order = sorted(range(len(lm.models)), key=lambda i: (
            str(lm.models["arm"].iloc[i]) if "arm" in lm.models.columns else "", lm.families[i], lm.params[i]))
        self._hold = True
        self.models.options = [(_model_label(lm.models, i, self.unit), lm.model_names[i]) for i in order]
        self.models.value = ()
        self.family.options = sorted(set(lm.families))
        front = self.data.exact_frontier(self.frontier_time_limit_s)
        self.budget.min = -30.0  # log10 of the unit; widened first so that any new range is valid
        self.budget.max = float(np.log10(lm.params.sum() / self.unit))
        self.budget.min = float(np.log10(front["params"].min() / self.unit))
        self.budget.value = float(front["params"].max() / self.unit)
        self.family.value = self.family.options[0]
        self._hold = False
        self.figure = None
        self.select_best_single()
        # built after the first selection so that its mark is part of the widget's initial state: Voila shows
        # the state as it is when the page connects, and plotly's update messages sent before that are lost
        self.figure = self._frontier_figure()
        self.every_arm.disabled = "arm" not in lm.models.columns
        self.status.value = ""

    def widget(self):
        """The whole explorer as one ipywidgets box (built once; the plot is swapped when the data change)."""
        if self._box is not None:
            return self._box
        w = self._w
        presets = w.VBox([w.HBox([self.best_button, self.family, self.family_button]),
                          w.HBox([self.budget, self.budget_unit, self.budget_button])])
        left = w.VBox([w.HBox([self.profile, self.every_arm]), self.models, presets, self.numbers_view, self.shares_view])
        figure_box = w.VBox([self.figure])
        for control in (self.profile, self.every_arm):
            control.observe(lambda change: setattr(figure_box, "children", (self.figure,)), names="value")
        self._box = w.VBox([self.status, w.HBox([left, figure_box]), w.HTML("<b>Texts</b> by the selection's gain "
                            "over its best member (nats); pick one"), w.HBox([self.texts, self.text_view])])
        return self._box

    # ------------------------------------------------------------------ presets
    def select(self, names: Sequence[str]) -> None:
        """Select the models ``names`` (ids as in the loss matrix), as clicking them does."""
        rows = self.data.lm.rows(names)  # an unknown name is an error naming it
        self.models.value = tuple(self.data.lm.model_names[r] for r in rows)

    def select_best_single(self) -> None:
        """Select the single model with the lowest mean loss."""
        self.select([self.data.lm.model_names[int(np.argmin(self.data.L.mean(axis=1)))]])

    def select_family(self, family: str) -> None:
        """Select every model of ``family``."""
        self.select([n for n, f in zip(self.data.lm.model_names, self.data.lm.families) if f == family])

    def select_frontier_point(self, budget_params: float) -> None:
        """Select the exact any-size frontier's lowest-loss subset with total P ≤ ``budget_params`` (raw count)."""
        if self._hold:
            return
        front = self.data.exact_frontier(self.frontier_time_limit_s)
        within = front[front["params"] <= budget_params * (1 + 1e-12)]
        if within.empty:
            self.status.value = f"no frontier point within P ≤ {budget_params / self.unit:.4g} {self.unit_name}"
            return
        self.select(list(within.sort_values("loss", kind="stable")["members"].iloc[0]))

    # ------------------------------------------------------------------ updates
    def _on_models(self) -> None:
        if self._hold:
            return
        names = list(self.models.value)
        if not names:
            self.status.value = "select at least one model"
            return
        self.status.value = ""
        rows = self.data.lm.rows(names)
        L = self.data.L
        self.numbers = selection_numbers(L, self.data.lm.params, rows)
        self.shares = win_share_table(L, rows, self.data.domains)
        self.gains = text_gains(L, rows)
        self.mixture = self._mixtures.get(self.numbers.members)
        self._show_numbers()
        if self.mixture is None:  # EM may take a second: the other numbers are shown first
            self._fitting = self._fitter.submit(self._fit_mixture, self.data, self.numbers.members)
        self.shares_view.value = shares_html(self.data, self.shares)
        shown = self.gains.head(TEXTS_SHOWN)
        ids = self.data.lm.text_ids
        self._hold = True
        self.texts.options = [(f"{ids[t]}  gain {g:,.2f}", int(t)) for t, g in zip(shown["text"], shown["gain"])]
        self.texts.value = int(shown["text"].iloc[0])
        self._hold = False
        self._show_text()
        self._mark_selection()

    def _show_numbers(self) -> None:
        self.numbers_view.value = numbers_html(self.data, self.numbers, self.mixture, self.unit, self.unit_name)

    def _fit_mixture(self, data: ExplorerData, members: tuple[int, ...]) -> None:
        result = heldout_mixture(data.L, members)
        if data is self.data:
            self._mixtures[members] = result
            if self.numbers is not None and self.numbers.members == members:
                self.mixture = result
                self._show_numbers()

    def wait_for_mixture(self) -> HeldoutMixture | None:
        """Block until the fitted mixture of the current selection is shown (tests, benchmarks); return it."""
        if self._fitting is not None:
            self._fitting.result()
        return self.mixture

    def _show_text(self) -> None:
        if self._hold or self.texts.value is None:
            return
        column = int(self.texts.value)
        names = list(self.models.value)
        rows = self.data.lm.rows(names)
        L = self.data.L
        winner = int(rows[np.argmin(L[rows, column])])
        body = "".join(f"<tr><td>{'★ ' if r == winner else ''}{html.escape(short_name(n))}</td>"
                       f"<td style='text-align:right'>{L[r, column]:,.3f}</td></tr>" for n, r in zip(names, rows))
        text_id = self.data.lm.text_ids[column]
        parts = [f"<b>{html.escape(text_id)}</b>: loss of each member (nats; ★ wins)<table>{body}</table>"]
        text = self.data.text(column)
        segments, seg = None, self.data.segments
        if seg is not None and text is not None and text_id in seg.text_ids and set(names) <= set(seg.model_names):
            segments = segment_winners(seg, seg.text_ids.index(text_id), [seg.model_names.index(n) for n in names])
        if segments is not None and not segments.empty:
            colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
            parts.append(segments_html(text, segments, colours))
        elif text is not None:
            shown = text[:TEXT_CHARS_SHOWN] + (" …" if len(text) > TEXT_CHARS_SHOWN else "")
            parts.append(f"<pre style='white-space:pre-wrap;max-height:24em;overflow:auto'>{html.escape(shown)}</pre>")
        else:
            parts.append("<i>the text itself is not available for this profile</i>")
        self.text_view.value = "".join(parts)

    # ------------------------------------------------------------------ plot
    def _frontier_figure(self):
        import plotly.graph_objects as go

        lm, unit = self.data.lm, self.unit
        names = [short_name(n) for n in lm.model_names]
        params, families = lm.params, lm.families
        pairs = self.data.pair_losses()
        fig = go.Figure()
        fig.add_scatter(x=params / unit, y=np.diag(pairs), mode="markers", name="single models",
                        text=[f"{n}<br>P={p / unit:.4g}<br>loss={v:,.2f}" for n, p, v in zip(names, params, np.diag(pairs))],
                        hoverinfo="text", marker=dict(size=8, color="black"))
        i, j = np.triu_indices(len(names), k=1)
        same = families[i] == families[j]
        for group, mask, colour in ((SAME_FAMILY, same, "#2ca02c"), (CROSS_FAMILY, ~same, "#1f77b4")):
            pi, pj = i[mask], j[mask]
            p, v = (params[pi] + params[pj]) / unit, pairs[pi, pj]
            fig.add_scatter(x=p, y=v, mode="markers", name=f"{group.replace('_', '-')} pairs", opacity=0.5,
                            text=[f"{names[a]} + {names[b]}<br>P={x:.4g}<br>loss={y:,.2f}" for a, b, x, y in zip(pi, pj, p, v)],
                            hoverinfo="text", marker=dict(size=5, color=colour))
        front = self.data.exact_frontier(self.frontier_time_limit_s)
        fig.add_scatter(x=front["params"] / unit, y=front["loss"], mode="lines+markers",
                        name="exact any-size frontier (branch and bound)", line=dict(shape="hv", color="#d62728"),
                        text=[f"{' + '.join(short_name(m) for m in ms)}<br>P={p / unit:.4g}<br>loss={v:,.2f}"
                              for ms, p, v in zip(front["members"], front["params"], front["loss"])], hoverinfo="text")
        x, y, text = self._selection_point()
        fig.add_scatter(x=x, y=y, text=text, mode="markers", name="selection", hoverinfo="text",
                        marker=dict(size=16, symbol="star", color="gold", line=dict(width=1, color="black")))
        fig.update_layout(xaxis_type="log", xaxis_title=f"total parameters P ({self.unit_name})",
                          yaxis_title="oracle loss (nats per text, eq. 4)", height=520, width=720,
                          margin=dict(l=70, r=10, t=30, b=60), legend=dict(x=0.55, y=0.98))
        return go.FigureWidget(fig)

    def _selection_point(self) -> tuple[list[float], list[float], list[str]]:
        """x (P in the display unit), y (oracle loss) and hover text of the selection's mark."""
        n = self.numbers
        if n is None:
            return [], [], []
        names = " + ".join(short_name(self.data.lm.model_names[r]) for r in n.members)
        return [n.params / self.unit], [n.oracle_loss], [f"{names}<br>P={n.params / self.unit:.4g}<br>loss={n.oracle_loss:,.2f}"]

    def _mark_selection(self) -> None:
        if self.figure is None:
            return
        x, y, text = self._selection_point()
        with self.figure.batch_update():
            trace = self.figure.data[-1]
            trace.x, trace.y, trace.text = x, y, text
