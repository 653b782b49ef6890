"""Image-based autofocus: a z scan scored by normalized variance, and a planar focus map."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from deepscope.imaging import normalized_variance


def scan_positions(centre_um: float, range_um: float, step_um: float) -> list[float]:
    """Z positions of a scan of total *range_um* around *centre_um*, *step_um* apart."""
    n = max(round(range_um / step_um), 0) + 1
    return [centre_um + (i - (n - 1) / 2) * step_um for i in range(n)]


def best_focus(positions: Sequence[float], scores: Sequence[float]) -> float:
    """Z of the highest score, refined by a parabola through the peak and its neighbours."""
    s = np.asarray(scores, dtype=np.float64)
    z = np.asarray(positions, dtype=np.float64)
    i = int(np.argmax(s))
    if 0 < i < len(s) - 1:
        denom = s[i - 1] - 2 * s[i] + s[i + 1]
        if denom < 0:
            shift = 0.5 * (s[i - 1] - s[i + 1]) / denom
            return float(z[i] + shift * (z[i + 1] - z[i]))
    return float(z[i])


def z_scan(
    snap_at: Callable[[float], np.ndarray],
    centre_um: float,
    range_um: float,
    step_um: float,
    *,
    extend: int = 2,
) -> float:
    """Snap at each z of a scan around *centre_um* and return the z of best focus.

    When the sharpest plane is at an end of the scan, the scan goes on beyond that end, by
    up to *extend* more half-ranges, until the score falls off again.
    """
    scores = {
        z: normalized_variance(snap_at(z)) for z in scan_positions(centre_um, range_um, step_um)
    }
    n_more = max(round(range_um / step_um / 2), 1)
    for _ in range(extend):
        zs = sorted(scores)
        best = max(zs, key=scores.__getitem__)
        if best == zs[-1]:
            more = [zs[-1] + (i + 1) * step_um for i in range(n_more)]
        elif best == zs[0]:
            more = [zs[0] - (i + 1) * step_um for i in range(n_more)]
        else:
            break
        scores.update({z: normalized_variance(snap_at(z)) for z in more})
    zs = sorted(scores)
    return best_focus(zs, [scores[z] for z in zs])


class FocusMap:
    """A plane ``z = a*x + b*y + c`` fitted through measured focus points (least squares)."""

    def __init__(self, points: Sequence[tuple[float, float, float]]) -> None:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if len(pts) >= 3:
            design = np.column_stack([pts[:, 0], pts[:, 1], np.ones(len(pts))])
            self.coef = np.linalg.lstsq(design, pts[:, 2], rcond=None)[0]
        else:
            self.coef = np.array([0.0, 0.0, float(pts[:, 2].mean()) if len(pts) else 0.0])

    def __call__(self, x_um: float, y_um: float) -> float:
        """Focus z at stage position (x, y)."""
        a, b, c = self.coef
        return float(a * x_um + b * y_um + c)


def map_points(
    x_range: tuple[float, float], y_range: tuple[float, float], n: int
) -> list[tuple[float, float]]:
    """*n* well-spread focus-map points: the corners of the area inset by 10 %, then a grid."""
    (x0, x1), (y0, y1) = x_range, y_range
    side = max(2, int(np.ceil(np.sqrt(n))))
    xs = np.linspace(x0 + 0.1 * (x1 - x0), x1 - 0.1 * (x1 - x0), side)
    ys = np.linspace(y0 + 0.1 * (y1 - y0), y1 - 0.1 * (y1 - y0), side)
    grid = [(float(x), float(y)) for y in ys for x in xs]
    corners = [grid[0], grid[side - 1], grid[-side], grid[-1]]
    rest = [p for p in grid if p not in corners]
    return (corners + rest)[:n]
