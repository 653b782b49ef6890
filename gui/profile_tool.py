"""The Live tab's line-profile tool: one line over both image panes, its intensities plotted.

Both panes draw in raw-pixel view coordinates, so one line means the same slide segment in
each; a line per pane (kept equal) lets the person drag it on either. The plot shows every
channel of the raw frame (solid) and of the enhanced frame (dashed) against distance in um.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt

from gui.image_pane import ImagePane

#: Pen colours of the channels (one channel: white).
CHANNEL_PENS = ("#ff5050", "#50d050", "#5080ff")


class ProfileTool:
    """A line segment on *panes* (the first is the raw pane) and the plot of their profiles."""

    def __init__(self, *panes: ImagePane) -> None:
        self.panes = panes
        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "distance along the line (um)")
        self.plot.setLabel("left", "intensity")
        # one row of names on a dark band, above the curves (headroom at the top of the range)
        self.plot.addLegend(offset=(10, 2), colCount=6, brush=(0, 0, 0, 220))
        self.plot.setMinimumHeight(160)
        self.plot.hide()
        self.lines: list[pg.LineSegmentROI] = []
        self._curves: dict[tuple[int, int], pg.PlotDataItem] = {}
        self._syncing = False

    @property
    def active(self) -> bool:
        """True while the line is shown."""
        return bool(self.lines)

    def set_active(self, on: bool) -> None:
        """Show the line (across the middle of the raw view) and the plot, or remove both."""
        if on == self.active:
            return
        if not on:
            for pane, line in zip(self.panes, self.lines, strict=True):
                pane.view.removeItem(line)
            self.lines = []
            self.plot.hide()
            return
        r = self.panes[0].view.viewRect()
        y = r.center().y()
        ends = [(r.left() + 0.25 * r.width(), y), (r.left() + 0.75 * r.width(), y)]
        for pane in self.panes:
            line = pg.LineSegmentROI(ends, pen=pg.mkPen("#ffd000", width=2))
            line.sigRegionChanged.connect(self._on_moved)
            pane.view.addItem(line)
            self.lines.append(line)
        self.plot.show()
        self.update()

    def set_ends(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        """Put the line from *start* to *end* (view coordinates: raw pixels)."""
        if self.lines:
            self._place(self.lines[0], [start, end])
            self._on_moved(self.lines[0])

    def ends(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """The line's ends in view coordinates (raw pixels), or None when inactive."""
        if not self.lines:
            return None
        line = self.lines[0]
        a, b = (line.mapToParent(h["item"].pos()) for h in line.handles)
        return (a.x(), a.y()), (b.x(), b.y())

    @staticmethod
    def _place(line: pg.LineSegmentROI, ends: list[tuple[float, float]]) -> None:
        for handle, (x, y) in zip(line.handles, ends, strict=True):
            line.movePoint(handle["item"], QPointF(x, y), finish=False, coords="parent")
        line.stateChanged(finish=True)

    def _on_moved(self, moved: pg.LineSegmentROI) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            ends = self.ends() if moved is self.lines[0] else None
            if ends is None:
                a, b = (moved.mapToParent(h["item"].pos()) for h in moved.handles)
                ends = ((a.x(), a.y()), (b.x(), b.y()))
            for line in self.lines:
                if line is not moved:
                    self._place(line, list(ends))
        finally:
            self._syncing = False
        self.update()

    def update(self) -> None:
        """Recompute and draw the profiles (called on a new frame and when the line moves)."""
        ends = self.ends()
        if ends is None:
            return
        lows, highs = [], []
        for p, pane in enumerate(self.panes):
            profile = pane.profile(*ends)
            channels = 0 if profile is None else profile.values.shape[1]
            for c in range(3):
                curve = self._curves.get((p, c))
                if c >= channels or profile is None:
                    if curve is not None:
                        curve.setData([], [])
                    continue
                if curve is None:
                    colour = CHANNEL_PENS[c] if channels > 1 else "#e0e0e0"
                    style = Qt.PenStyle.SolidLine if p == 0 else Qt.PenStyle.DashLine
                    name = pane.view.name if channels == 1 else f"{pane.view.name} {'RGB'[c]}"
                    curve = self.plot.plot(pen=pg.mkPen(colour, width=1.5, style=style), name=name)
                    self._curves[(p, c)] = curve
                curve.setData(profile.distance_um, profile.values[:, c])
                lows.append(float(profile.values[:, c].min()))
                highs.append(float(profile.values[:, c].max()))
        if lows:  # headroom above the curves for the legend
            lo, hi = min(lows), max(highs)
            self.plot.setYRange(lo, hi + 0.6 * max(hi - lo, 1.0), padding=0.02)
