"""OME-TIFF reading and writing: tifffile for pixels, ome-types for the OME-XML.

Every image deepscope writes (snaps, acquired fields, enhanced frames) goes through
:func:`write_ome_tiff`, so that Fiji, napari and Bio-Formats see physical pixel sizes, per-plane
stage positions, the objective and the exposure. Data are stored as ``(z, y, x)`` pages, with RGB
as interleaved samples, which is what Bio-Formats writes for bright-field colour images.

ome-types renders the OME-XML once per image shape and metadata that do not change from image to
image (a few ms); what does change (plane positions, exposures, times, the acquisition date) is
then written into that text with ome-types' own value serializer (xsdata), which gives the same
bytes as a full render in ~1/100 of the time: a live recording writes a hundred files a second.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import tifffile
from ome_types import from_xml, model
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from xsdata.formats.converter import converter

from deepscope.atomic import atomic_path
from deepscope.errors import InputError, shown
from deepscope.limits import check_image

MAP_NAMESPACE = "deepscope"


class PlaneMeta(BaseModel):
    """Where and when one z-plane was taken (stage position read back from the stage)."""

    model_config = ConfigDict(frozen=True)

    x_um: float
    y_um: float
    z_um: float
    exposure_ms: float | None = None
    t_s: float | None = Field(default=None, description="seconds since the first plane")


class ImageMeta(BaseModel):
    """Metadata carried by one OME-TIFF file (one field, possibly a z-stack)."""

    model_config = ConfigDict(frozen=True)

    pixel_size_um: float = Field(gt=0)
    z_step_um: float | None = Field(default=None, gt=0)
    planes: tuple[PlaneMeta, ...] = ()
    objective: str | None = None
    magnification: float | None = Field(default=None, gt=0)
    na: float | None = Field(default=None, gt=0)
    immersion: str | None = None
    channel_names: tuple[str, ...] = ()
    acquired_at: datetime | None = Field(default=None, description="when missing: at writing")
    significant_bits: int | None = Field(
        default=None, ge=1, le=64, description="bit depth of the camera's values (12 in uint16)"
    )
    name: str | None = None
    annotations: dict[str, str] = Field(default_factory=dict)


def as_zyxc(data: np.ndarray) -> np.ndarray:
    """Return *data* as a 4-D ``(z, y, x, c)`` view; accepts ``(y,x)``, ``(y,x,3)``, ``(z,y,x)``."""
    if data.ndim == 2:
        return data[None, :, :, None]
    if data.ndim == 3:
        if data.shape[-1] in (3, 4):
            return data[None]
        return data[..., None]
    if data.ndim == 4:
        return data
    raise InputError(f"image of shape {data.shape} is not (y,x), (y,x,c), (z,y,x) or (z,y,x,c)")


_PIXEL_TYPES: dict[str, model.PixelType] = {
    "uint8": model.PixelType.UINT8,
    "uint16": model.PixelType.UINT16,
    "float32": model.PixelType.FLOAT,
    "float64": model.PixelType.DOUBLE,
}

_IMMERSIONS = {i.value.lower(): i for i in model.Objective_Immersion}


def clean_um(value: float | None) -> float | None:
    """*value* without binary float noise (0.07400000000000001 -> 0.074): 12 significant digits."""
    return None if value is None else float(f"{value:.12g}")


def _render_ome_xml(shape: tuple[int, ...], dtype: str, meta: ImageMeta) -> str:
    """The OME-XML of a ``(z, y, x, c)`` stack, rendered by ome-types."""
    nz, ny, nx, nc = shape
    if dtype not in _PIXEL_TYPES:
        raise InputError(
            f"pixel type {dtype} not supported; expected one of {sorted(_PIXEL_TYPES)}"
        )
    if meta.planes and len(meta.planes) != nz:
        raise InputError(f"{len(meta.planes)} plane records for a stack of {nz} planes")
    names = meta.channel_names or (("R", "G", "B") if nc == 3 else ("gray",))
    channel = model.Channel(
        id="Channel:0:0", samples_per_pixel=nc, name="/".join(names) if nc > 1 else names[0]
    )
    planes = [
        model.Plane(
            the_z=i,
            the_c=0,
            the_t=0,
            position_x=clean_um(p.x_um),
            position_x_unit=model.UnitsLength.MICROMETER,
            position_y=clean_um(p.y_um),
            position_y_unit=model.UnitsLength.MICROMETER,
            position_z=clean_um(p.z_um),
            position_z_unit=model.UnitsLength.MICROMETER,
            exposure_time=p.exposure_ms,
            exposure_time_unit=model.UnitsTime.MILLISECOND,
            delta_t=p.t_s,
            delta_t_unit=model.UnitsTime.SECOND,
        )
        for i, p in enumerate(meta.planes)
    ]
    pixels = model.Pixels(
        id="Pixels:0",
        dimension_order=model.Pixels_DimensionOrder.XYCZT,
        type=_PIXEL_TYPES[dtype],
        size_x=nx,
        size_y=ny,
        size_z=nz,
        size_c=nc,
        size_t=1,
        interleaved=nc > 1,
        physical_size_x=clean_um(meta.pixel_size_um),
        physical_size_y=clean_um(meta.pixel_size_um),
        physical_size_z=clean_um(meta.z_step_um),
        significant_bits=meta.significant_bits,
        channels=[channel],
        planes=planes,
        tiff_data_blocks=[model.TiffData(ifd=0, plane_count=nz)],
    )
    acquired = meta.acquired_at or datetime.now(UTC)
    image = model.Image(id="Image:0", name=meta.name, acquisition_date=acquired, pixels=pixels)
    ome = model.OME(creator="deepscope", images=[image])
    if meta.objective or meta.magnification or meta.na:
        immersion = _IMMERSIONS.get((meta.immersion or "").lower())
        objective = model.Objective(
            id="Objective:0:0",
            model=meta.objective,
            nominal_magnification=meta.magnification,
            lens_na=meta.na,
            immersion=immersion,
        )
        ome.instruments = [model.Instrument(id="Instrument:0", objectives=[objective])]
        image.instrument_ref = model.InstrumentRef(id="Instrument:0")
        image.objective_settings = model.ObjectiveSettings(id="Objective:0:0")
    if meta.annotations:
        ann = model.MapAnnotation(
            id="Annotation:0",
            namespace=MAP_NAMESPACE,
            value=model.Map(ms=[model.Map.M(k=k, value=v) for k, v in meta.annotations.items()]),
        )
        ome.structured_annotations = model.StructuredAnnotations(map_annotations=[ann])
        image.annotation_refs = [model.AnnotationRef(id="Annotation:0")]
    return ome.to_xml()


#: Plane fields that change from image to image, filled into a rendered template.
_PLANE_FIELDS = ("x_um", "y_um", "z_um", "exposure_ms", "t_s")
#: Stands in for ``acquired_at`` in a template (no instrument of 1901 wrote OME-XML).
_DATE_SENTINEL = datetime(1901, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)


def _sentinel(plane: int, field: int) -> float:
    """A value no real field holds, exact in binary and in 12 significant digits."""
    return -987_000_000.125 - 8 * plane - field


def _skeleton(meta: ImageMeta) -> ImageMeta:
    """*meta* with every per-image value replaced by its sentinel (``None`` stays ``None``)."""
    planes = tuple(
        PlaneMeta(
            **{
                name: None if getattr(p, name) is None else _sentinel(i, k)
                for k, name in enumerate(_PLANE_FIELDS)
            }
        )
        for i, p in enumerate(meta.planes)
    )
    return meta.model_copy(update={"planes": planes, "acquired_at": _DATE_SENTINEL})


@dataclass(frozen=True)
class _XmlTemplate:
    """Rendered OME-XML cut at its per-image values: ``len(pieces) == len(slots) + 1``.

    A slot is ``(plane, field)``, or ``(-1, "acquired_at")`` for the acquisition date.
    """

    pieces: tuple[str, ...]
    slots: tuple[tuple[int, str], ...]

    def fill(self, meta: ImageMeta) -> str:
        """The OME-XML for *meta*, whose skeleton this template was rendered from."""
        acquired = meta.acquired_at or datetime.now(UTC)
        out = [self.pieces[0]]
        for (plane, name), piece in zip(self.slots, self.pieces[1:], strict=True):
            if plane < 0:
                text = converter.serialize(acquired)
            elif name.endswith("_um"):  # cleaned, as _render_ome_xml does
                text = converter.serialize(clean_um(getattr(meta.planes[plane], name)))
            else:
                text = converter.serialize(getattr(meta.planes[plane], name))
            out += (text, piece)
        return "".join(out)


@functools.lru_cache(maxsize=32)
def _template(shape: tuple[int, ...], dtype: str, skeleton_json: str) -> _XmlTemplate | None:
    """The template for one shape and skeleton, or None when it cannot be cut.

    None when a sentinel is not found exactly once (a name or annotation that happens to
    contain one): then every image is rendered in full.
    """
    skeleton = ImageMeta.model_validate_json(skeleton_json)
    xml = _render_ome_xml(shape, dtype, skeleton)
    found: list[tuple[int, str, int, str]] = []  # position, text, plane, field
    date = converter.serialize(_DATE_SENTINEL)
    for i, p in enumerate(skeleton.planes):
        for name in _PLANE_FIELDS:
            value = getattr(p, name)
            if value is not None:
                found.append((xml.find(text := converter.serialize(value)), text, i, name))
    found.append((xml.find(date), date, -1, "acquired_at"))
    if any(pos < 0 or xml.count(text) != 1 for pos, text, _, _ in found):
        return None
    found.sort()
    pieces, start = [], 0
    for pos, text, _, _ in found:
        pieces.append(xml[start:pos])
        start = pos + len(text)
    pieces.append(xml[start:])
    return _XmlTemplate(tuple(pieces), tuple((i, name) for _, _, i, name in found))


def ome_xml(shape: tuple[int, ...], dtype: np.dtype | str, meta: ImageMeta) -> str:
    """The OME-XML for a ``(z, y, x, c)`` stack of *shape* and *dtype* described by *meta*.

    Rendered by ome-types once per shape and unchanging metadata, then filled per image.
    """
    dtype = str(np.dtype(dtype))
    template = _template(tuple(shape), dtype, _skeleton(meta).model_dump_json())
    if template is None:
        return _render_ome_xml(tuple(shape), dtype, meta)
    return template.fill(meta)


def write_ome_tiff(
    path: str | os.PathLike[str],
    data: np.ndarray,
    meta: ImageMeta,
    *,
    compress: bool = False,
    sync: bool = True,
) -> Path:
    """Write *data* with *meta* as an OME-TIFF at *path*, atomically.

    *data* may be ``(y,x)``, ``(y,x,c)``, ``(z,y,x)`` or ``(z,y,x,c)``; uint8, uint16 or float.
    Uncompressed by default, as Micro-Manager writes: on noisy 12-bit camera data zlib saves
    about a third of the bytes but costs ~8x the write time (see BENCHMARKS.md, acquisition),
    which an acquisition cannot spare. *compress* uses zlib (level 1), which every TIFF reader
    knows. *sync* False: the file is not yet durable (see
    :func:`~deepscope.atomic.atomic_path`). Returns the final path.
    """
    stack = np.ascontiguousarray(as_zyxc(np.asarray(data)))
    xml = ome_xml(stack.shape, stack.dtype, meta)
    final = Path(path)
    with atomic_path(final, size_hint=stack.nbytes + len(xml), sync=sync) as tmp:
        nc = stack.shape[-1]
        page_data = stack if nc > 1 else stack[..., 0]
        tifffile.imwrite(
            tmp,
            page_data,
            photometric="rgb" if nc == 3 else "minisblack",
            # TIFF resolution in pixels per centimetre, for readers without OME (Fiji's TIFF)
            resolution=(1e4 / meta.pixel_size_um, 1e4 / meta.pixel_size_um),
            resolutionunit=tifffile.RESUNIT.CENTIMETER,
            planarconfig="contig" if nc > 1 else None,
            description=xml.encode("utf-8"),
            metadata=None,
            compression="zlib" if compress else None,
            compressionargs={"level": 1} if compress else None,
            bigtiff=stack.nbytes > 3_500_000_000,
        )
    return final


def ome_pixels(p: Path, xml: str) -> tuple[model.OME, model.Pixels, int]:
    """The parsed OME, its first image's pixels and samples per pixel, checked for use.

    Raises :class:`~deepscope.errors.InputError` naming *p* when the XML cannot be parsed, has
    no image or records no positive physical pixel size.
    """
    try:
        ome = from_xml(xml)
    except Exception as exc:
        raise InputError(f"{p}: OME-XML metadata cannot be parsed ({exc})") from exc
    if not ome.images:
        raise InputError(f"{p}: OME-XML has no <Image>")
    px = ome.images[0].pixels
    if px.physical_size_x is None or px.physical_size_x <= 0:
        raise InputError(f"{p}: no physical pixel size (OME Pixels PhysicalSizeX) is recorded")
    nc = px.channels[0].samples_per_pixel if px.channels and px.channels[0].samples_per_pixel else 1
    return ome, px, nc


def read_ome_tiff(path: str | os.PathLike[str]) -> tuple[np.ndarray, ImageMeta]:
    """Read an OME-TIFF into a ``(z, y, x, c)`` array and its :class:`ImageMeta`.

    Files written elsewhere work too when they hold OME-XML with physical pixel sizes.
    Raises :class:`~deepscope.errors.InputError` for unreadable, truncated or non-OME files.
    """
    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tf:
            xml = tf.ome_metadata
            if not xml:
                raise InputError(f"{p}: not an OME-TIFF (no OME-XML metadata)")
            ome, px, nc = ome_pixels(p, xml)
            series = tf.series[0]
            check_image(tuple(series.shape), np.dtype(series.dtype).itemsize, f"{p}")
            n_pixels, plane = int(np.prod(series.shape)), px.size_z * px.size_y * px.size_x
            if n_pixels != plane * nc if nc > 1 else n_pixels % plane:
                raise InputError(
                    f"{p}: OME-XML says {px.size_z}x{px.size_y}x{px.size_x}x{nc} (z, y, x, c) "
                    f"but the TIFF holds pixels of shape {tuple(series.shape)}"
                )
            data = tf.asarray()
    except InputError:
        raise
    except FileNotFoundError as exc:
        raise InputError(f"{p}: file not found") from exc
    except MemoryError as exc:
        raise InputError(f"{p}: not enough memory to read it") from exc
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise InputError(f"{p}: not a readable TIFF ({type(exc).__name__}: {exc})") from exc
    image = ome.images[0]
    stack = data.reshape(px.size_z, px.size_y, px.size_x, nc if nc > 1 else -1)
    try:
        meta = _image_meta(ome, image, px)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(
            f"{p}: OME metadata {'.'.join(map(str, err['loc']))}: {err['msg']} "
            f"(got {shown(err.get('input'))})"
        ) from exc
    return stack, meta


def _image_meta(ome: model.OME, image: model.Image, px: model.Pixels) -> ImageMeta:
    planes = tuple(
        PlaneMeta(
            x_um=pl.position_x if pl.position_x is not None else float("nan"),
            y_um=pl.position_y if pl.position_y is not None else float("nan"),
            z_um=pl.position_z if pl.position_z is not None else float("nan"),
            exposure_ms=pl.exposure_time,
            t_s=pl.delta_t,
        )
        for pl in sorted(px.planes, key=lambda q: q.the_z)
    )
    objective: model.Objective | None = None
    if ome.instruments and ome.instruments[0].objectives:
        objective = ome.instruments[0].objectives[0]
    annotations: dict[str, str] = {}
    if ome.structured_annotations is not None:
        for ann in ome.structured_annotations.map_annotations:
            if ann.namespace == MAP_NAMESPACE:
                annotations.update({m.k or "": m.value for m in ann.value.ms})
    names = tuple(px.channels[0].name.split("/")) if px.channels and px.channels[0].name else ()
    return ImageMeta(
        pixel_size_um=float(px.physical_size_x or 0.0),
        z_step_um=px.physical_size_z,
        planes=planes,
        objective=objective.model if objective else None,
        magnification=objective.nominal_magnification if objective else None,
        na=objective.lens_na if objective else None,
        immersion=objective.immersion.value if objective and objective.immersion else None,
        channel_names=names,
        acquired_at=image.acquisition_date,
        significant_bits=px.significant_bits,
        name=image.name,
        annotations=annotations,
    )
