"""One section per study; ``build_sections`` puts the ones the inputs hold in the report's order."""

from __future__ import annotations

from ..document import Section
from ..sources import Inputs
from .ablations import ablation_section, amnesic_section
from .attribution import attribution_section
from .features import feature_section
from .heads import attention_section
from .lens import lens_section
from .probes import probe_section
from .provenance import provenance_section
from .scale import scale_section
from .scorecards import scorecard_section


def build_sections(inputs: Inputs) -> list[Section]:
    sections = [
        scorecard_section(inputs),
        probe_section(inputs),
        ablation_section(inputs),
        attribution_section(inputs),
        feature_section(inputs),
        amnesic_section(inputs),
        scale_section(inputs),
        attention_section(inputs),
        lens_section(inputs),
        provenance_section(inputs),
    ]
    return [s for s in sections if s is not None]
