"""One typed, documented spec per study, each in the module named after its study on a small shared base
(``base``: the strict spec, registry-backed names, the one-line errors; ``options``: the model and spreading
options several share): each default is written once.

    spec = AblationSpec(model="smollm2-135m", n=128, erase="subject_number")     # Python
    spec = load_suite("my.toml")                                                # a TOML file (a SuiteSpec)
    probes ablate smollm2-135m --n 128 --erase subject_number                   # the CLI: flags made from the spec

The three take the same names and the same checks: the CLI's flags are generated from these fields
(``probes.cli``), a suite's ``[[ablations]]`` entries are ``AblationSpec`` s (``[[attributions]]`` and
``[[circuits]]``: ``AttributeSpec`` s and ``CircuitSpec`` s), and the pipelines take
a spec and nothing else. A bad value is one line that names the key (``my.toml: ablations[0]: key
'top_k'``) or the flag (``--top-k``) and says what would be right.

Field metadata used by the CLI (``json_schema_extra``): ``positional`` (an argument, not a flag),
``cli`` (False: not offered as a flag), ``metavar``.
"""

from probes.pipelines.specs.ablate import AblationSettings as AblationSettings
from probes.pipelines.specs.ablate import AblationSpec as AblationSpec
from probes.pipelines.specs.attribute import AttributeSpec as AttributeSpec
from probes.pipelines.specs.attribute import CircuitSpec as CircuitSpec
from probes.pipelines.specs.base import MAX_EXAMPLES as MAX_EXAMPLES
from probes.pipelines.specs.base import Spec as Spec
from probes.pipelines.specs.base import SpecError as SpecError
from probes.pipelines.specs.base import describe_error as describe_error
from probes.pipelines.specs.base import make as make
from probes.pipelines.specs.capture import DEMO_SITES as DEMO_SITES
from probes.pipelines.specs.capture import CaptureSpec as CaptureSpec
from probes.pipelines.specs.capture import HeadsSpec as HeadsSpec
from probes.pipelines.specs.lens import LensSpec as LensSpec
from probes.pipelines.specs.options import ModelOptions as ModelOptions
from probes.pipelines.specs.options import SpreadOptions as SpreadOptions
from probes.pipelines.specs.report import DemoSpec as DemoSpec
from probes.pipelines.specs.report import ReportSpec as ReportSpec
from probes.pipelines.specs.report import ValidateSpec as ValidateSpec
from probes.pipelines.specs.sae import FeaturesSpec as FeaturesSpec
from probes.pipelines.specs.sae import SaeTrainSpec as SaeTrainSpec
from probes.pipelines.specs.scale import LadderEvalSpec as LadderEvalSpec
from probes.pipelines.specs.scale import LadderSpec as LadderSpec
from probes.pipelines.specs.scale import ScaleSpec as ScaleSpec
from probes.pipelines.specs.suite import CONTROLS as CONTROLS
from probes.pipelines.specs.suite import SUITES_DIR as SUITES_DIR
from probes.pipelines.specs.suite import ProbingSpec as ProbingSpec
from probes.pipelines.specs.suite import SuiteSpec as SuiteSpec
from probes.pipelines.specs.suite import TaskFile as TaskFile
from probes.pipelines.specs.suite import load_suite as load_suite
from probes.pipelines.specs.suite import ready_suites as ready_suites
