"""The simulated USAF-1951 target, as :func:`model.training.mtf.measure_mtf` measures it.

``deepscope evaluate`` hands it to the model's MTF measurement (``app/cli.py``), so that
``model`` does not import the simulator.
"""

from __future__ import annotations

from deepscope.mmcore import PyDeviceCore
from simulators.core import make_core
from simulators.microscope import nominal_pixel_size_um
from simulators.usaf import GROUPS, UsafElement, usaf_elements


class SimulatedUsafTarget:
    """The USAF-1951 target under the simulated microscope, without imperfections.

    Without objective offsets and stage errors, the stage position and the pixel size place
    every element in a frame.
    """

    def elements(self, groups: tuple[int, ...] | None = None) -> list[UsafElement]:
        """The elements of *groups* (None: every group of the target)."""
        return usaf_elements(groups or GROUPS)

    def pixel_size_um(self, objective: str) -> float:
        """Pixel size of *objective* (``"40x"``, ``"100x"``)."""
        return nominal_pixel_size_um(objective)

    def open_core(self, sensor: tuple[int, int], seed: int) -> PyDeviceCore:
        """A microscope core over the target with a ``(height, width)`` *sensor*."""
        return make_core(specimen="usaf", imperfections=False, sensor=sensor, seed=seed)
