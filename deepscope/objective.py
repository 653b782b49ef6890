"""What every part of deepscope knows about an objective: magnification, NA and immersion."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Objective(BaseModel):
    """Nominal data of one objective.

    ``immersion`` is the medium in lower case (``air``, ``oil``, ``water``, ``glycerol``...);
    any case is accepted. The OME-TIFF writer maps it onto OME's ``Objective`` immersion.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    magnification: float = Field(gt=0)
    na: float = Field(gt=0, le=1.7)
    immersion: str = "air"

    @field_validator("immersion")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.strip().lower()
