"""What a pair file carries of its source field: objective, acquisition date, bit depth, true z."""

from __future__ import annotations

import numpy as np

from deepscope.ometiff import ImageMeta, PlaneMeta


def at_plane(meta: ImageMeta, index: float) -> ImageMeta:
    """*meta* of a field reduced to the plane at *index* (fractional: between two planes).

    The z of that plane is interpolated from the field's read-back planes: a best-focus slice
    keeps its own z, an EDOF image of a stack the z of the stack's centre.
    """
    if not meta.planes:
        return meta
    zs = [p.z_um for p in meta.planes]
    z = float(np.interp(index, np.arange(len(zs)), zs))
    plane = meta.planes[0].model_copy(update={"z_um": z, "t_s": None})
    return meta.model_copy(update={"planes": (plane,), "z_step_um": None})


def pair_meta(
    source: ImageMeta,
    pixel_size_um: float,
    centre_um: tuple[float, float],
    name: str,
    annotations: dict[str, str],
) -> ImageMeta:
    """Metadata of a pair image cut from *source* (see :func:`at_plane`), centred at *centre_um*.

    The objective, acquisition date, bit depth, exposure and z are the source field's; the pixel
    size and the slide position are the pair image's own.
    """
    z = source.planes[0].z_um if source.planes else float("nan")
    exposure = source.planes[0].exposure_ms if source.planes else None
    plane = PlaneMeta(x_um=centre_um[0], y_um=centre_um[1], z_um=z, exposure_ms=exposure)
    return source.model_copy(
        update={
            "pixel_size_um": pixel_size_um,
            "planes": (plane,),
            "name": name,
            "annotations": annotations,
        }
    )
