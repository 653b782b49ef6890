"""Run pycromanager's Python-backend acquisition engine on any pymmcore-plus core.

pycromanager's Python backend (``acq_eng_py``) expects the snake_case core that ``mmpycorex``
builds around ``pymmcore.CMMCore``, with ``get_tagged_image`` / ``pop_next_tagged_image`` and a
``TaggedImage`` class. :class:`PycroCoreAdapter` gives a pymmcore-plus core (a real one, or the
simulator's ``UniMMCore``) exactly that face; tags carry the stage positions READ BACK from the
stages, the pixel size and the objective, in Micro-Manager's tag names.

:func:`pycro_engine` installs the engine for the duration of a ``with`` block and shuts it down
afterwards (otherwise the process can hang or abort at exit). Inside it,
``pycromanager.Acquisition`` selects the Python backend::

    with pycro_engine(core):
        with Acquisition(image_process_fn=keep, show_display=False) as acq:
            acq.acquire(multi_d_acquisition_events(xy_positions=..., z_start=...))

Take frames with ``image_process_fn`` or from the in-RAM dataset: pycromanager's NDTiff storage
(``directory=...``) writes 2-D frames only and fails on the simulator's RGB ``(y, x, 3)`` frames.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from pymmcore_plus import CMMCorePlus

from deepscope.framemeta import FrameMetaReader, to_tags

_SNAKE_1 = re.compile(r"(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile(r"([a-z0-9])([A-Z])")
_ENGINE_LOCK = threading.Lock()


def camel_to_snake(name: str) -> str:
    """``getXYStageDevice`` -> ``get_xy_stage_device`` (the rule mmpycorex uses)."""
    return _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", name)).lower()


class MMTaggedImage:
    """Pixels plus a dict of Micro-Manager tags (what ``acq_eng_py`` passes around)."""

    def __init__(self, tags: dict[str, Any] | None, pix: np.ndarray | None) -> None:
        self.tags = tags
        self.pix = pix


class PycroCoreAdapter:
    """A pymmcore-plus core seen through the snake_case API that pycromanager's engine calls.

    Every camelCase method of *core* is reachable under its snake_case name (and under its own
    name); ``get_tagged_image`` and ``pop_next_tagged_image`` add the tagged-image interface.
    """

    TaggedImage = MMTaggedImage  # the engine builds end-of-acquisition markers from it

    def __init__(self, core: CMMCorePlus) -> None:
        self.core = core
        self.read_meta = FrameMetaReader(core)
        self._names = {
            camel_to_snake(n): n
            for n in dir(type(core))
            if not n.startswith("_") and n != camel_to_snake(n)
        }

    def __getattr__(self, name: str) -> Any:
        core = self.__dict__["core"]
        return getattr(core, self.__dict__["_names"].get(name, name))

    def get_bytes_per_pixel(self) -> int:
        """Bytes per pixel as pycromanager's engine knows them (1, 2, or 4 for RGB32).

        Micro-Manager counts 8 bytes for a 16-bit RGB pixel (RGB64), a type pycromanager has
        no name for; it is reported by its sample size (2), as the engine then stores it.
        """
        bpp, components = int(self.core.getBytesPerPixel()), int(self.core.getNumberOfComponents())
        return bpp if components == 1 or bpp == 4 else bpp // components

    def image_tags(self) -> dict[str, Any]:
        """Tags describing the current state: stage positions read back, pixel size, objective."""
        core = self.core
        tags: dict[str, Any] = {
            "Camera": core.getCameraDevice(),
            "Core-Camera": core.getCameraDevice(),
            "Core-XYStage": core.getXYStageDevice(),
            "Core-Focus": core.getFocusDevice(),
            **to_tags(self.read_meta()),
        }
        cam = core.getCameraDevice()
        if cam:
            tags["Binning"] = core.getProperty(cam, "Binning")
            x0, y0, _, _ = core.getROI()
            tags["ROI-X-start"], tags["ROI-Y-start"] = int(x0), int(y0)
        return tags

    def get_tagged_image(
        self,
        cam_index: int = 0,
        camera: str | None = None,
        height: int | None = None,
        width: int | None = None,
        **_: Any,
    ) -> MMTaggedImage:
        """The image of the last ``snap_image`` with its tags (signature of mmpycorex's)."""
        pix = self.core.getImage()
        tags = self.image_tags()
        tags.update(Height=int(pix.shape[0]), Width=int(pix.shape[1]), CameraChannelIndex=cam_index)
        if camera:
            tags["Camera"] = camera
        return MMTaggedImage(tags, pix)

    def pop_next_tagged_image(self) -> MMTaggedImage:
        """Next image of a running sequence, with the camera's metadata and the current tags."""
        pix, md = self.core.popNextImageAndMD()
        tags = self.image_tags()
        tags.update({str(k): v for k, v in dict(md).items()})
        tags.update(Height=int(pix.shape[0]), Width=int(pix.shape[1]))
        return MMTaggedImage(tags, pix)


@contextmanager
def pycro_engine(core: CMMCorePlus) -> Iterator[PycroCoreAdapter]:
    """Install pycromanager's Python-backend engine on *core* for the ``with`` block.

    ``pycromanager.Acquisition`` inside the block uses the Python backend on *core*. On exit the
    engine's executors are shut down and the engine singleton removed, so another core can be
    used later and the interpreter exits cleanly. Only one engine can be active at a time.
    """
    from mmpycorex import launcher
    from pycromanager.acquisition.acq_eng_py.internal.engine import Engine

    if not _ENGINE_LOCK.acquire(blocking=False):
        raise RuntimeError("a pycromanager engine is already active in this process")
    adapter = PycroCoreAdapter(core)
    try:
        if Engine.get_instance() is not None:
            raise RuntimeError("pycromanager's engine was started elsewhere; shut it down first")
        engine = Engine(adapter)
        # pycromanager.Acquisition picks the Python backend when mmpycorex's list of Python
        # cores is not empty. Its only public way to fill it, start_headless(python_backend=
        # True), creates and loads a core of its own from a Micro-Manager installation; nothing
        # public registers an existing core, so the adapter goes into the list itself.
        launcher._PYMMCORES.append(adapter)
        try:
            yield adapter
        finally:
            launcher._PYMMCORES.remove(adapter)
            engine.shutdown()
            # Engine has get_instance() and shutdown() but nothing public that forgets the
            # singleton (stop_headless() only shuts it down), and Engine(core) keeps an existing
            # one, so a later engine would run on this core: remove it.
            del Engine.singleton
    finally:
        _ENGINE_LOCK.release()
