"""Simulated bright-field microscope as pymmcore-plus UniMMCore devices.

``make_core()`` returns a ready core with a camera, XY and Z stages, an objective turret
(40x/0.95 air, 100x/1.4 oil) and a lamp shutter over a procedural H&E slide (or a USAF-1951
target); ``microscope_of(core)`` gives the ground truth (see :mod:`simulators.microscope` for
the geometry convention).
"""

from simulators.core import SimulatedCore, make_core, microscope_of
from simulators.faults import FaultConfig
from simulators.microscope import (
    ObjectiveTruth,
    SnapTruth,
    StageTruth,
    VirtualMicroscope,
    nominal_pixel_size_um,
    pixel_to_slide,
)
from simulators.optics import OBJECTIVES, ObjectiveSpec
from simulators.usaf import UsafElement, usaf_elements

__all__ = [
    "OBJECTIVES",
    "FaultConfig",
    "ObjectiveSpec",
    "ObjectiveTruth",
    "SimulatedCore",
    "SnapTruth",
    "StageTruth",
    "UsafElement",
    "VirtualMicroscope",
    "make_core",
    "microscope_of",
    "nominal_pixel_size_um",
    "pixel_to_slide",
    "usaf_elements",
]
