"""The snake_case adapter that pycromanager's Python backend drives."""

from __future__ import annotations

import pytest

from acquire.pycro_core import PycroCoreAdapter, camel_to_snake, pycro_engine
from simulators import make_core


@pytest.fixture
def adapter():
    core = make_core(seed=2)
    core.setROI(0, 0, 40, 32)
    return PycroCoreAdapter(core)


def test_snake_case_names_reach_core_methods(adapter):
    assert camel_to_snake("getXYStageDevice") == "get_xy_stage_device"
    assert adapter.get_xy_stage_device() == "XY"
    assert adapter.get_focus_device() == "Z"
    assert adapter.get_pixel_size_um() == pytest.approx(0.185)
    adapter.set_xy_position(30.0, -20.0)
    assert tuple(adapter.get_xy_position()) == (30.0, -20.0)
    with pytest.raises(AttributeError):
        adapter.no_such_method()


def test_tagged_image_after_snap_carries_read_back_state(adapter):
    adapter.set_config("Objective", "100x")
    adapter.set_xy_position(5.0, 6.0)
    adapter.set_position(0.7)
    adapter.snap_image()
    ti = adapter.get_tagged_image(0, "Camera", 32, 40)
    assert ti.pix.shape == (32, 40, 3)
    tags = ti.tags
    assert (tags["XPositionUm"], tags["YPositionUm"], tags["ZPositionUm"]) == (5.0, 6.0, 0.7)
    assert tags["PixelSizeUm"] == pytest.approx(0.074)
    assert tags["Objective-Label"] == "100x"
    assert (tags["Camera"], tags["Height"], tags["Width"]) == ("Camera", 32, 40)


def test_pop_next_tagged_image_from_a_sequence(adapter):
    adapter.set_exposure(2.0)
    adapter.start_sequence_acquisition(3, 0.0, True)
    images = []
    while len(images) < 3:
        running = adapter.is_sequence_running()  # read before the count: no lost frames
        if adapter.get_remaining_image_count():
            images.append(adapter.pop_next_tagged_image())
        elif not running:
            break
    assert len(images) == 3
    assert [int(ti.tags["SimSnapIndex"]) for ti in images] == [0, 1, 2]
    assert all(ti.pix.shape == (32, 40, 3) for ti in images)
    assert images[0].tags["Camera"] == "Camera"


def test_engine_context_is_exclusive_and_removed_after():
    from pycromanager.acquisition.acq_eng_py.internal.engine import Engine

    core = make_core()
    with pycro_engine(core) as adapter:
        assert Engine.get_instance().core is adapter
        with pytest.raises(RuntimeError, match="already active"), pycro_engine(core):
            pass
    assert Engine.get_instance() is None
