"""Capture traces: the recording proxy, the recording httpx transport, importers, synthesis."""

from ._aiperf import import_aiperf_input, import_aiperf_raw
from ._aiperf_export import export_aiperf_input
from ._errors import RecorderError
from ._har import import_har
from ._listen import exposure_warning, is_exposed, listen_url
from ._prompts import BUILTIN_PROMPTS, load_prompts
from ._proxy import RecordingProxy
from ._rec_process import RecorderProcess
from ._sink import Recorder, RecorderStats, RecordOptions, check_output
from ._source_io import ImportStats, InputError
from ._synth import ArrivalProcess, SynthOptions, parse_schedule, synthesize
from ._transport import RecordingTransport
from ._valuespec import ValueSpec

__all__ = [
    "BUILTIN_PROMPTS",
    "ArrivalProcess",
    "ImportStats",
    "InputError",
    "RecordOptions",
    "Recorder",
    "RecorderError",
    "RecorderProcess",
    "RecorderStats",
    "RecordingProxy",
    "RecordingTransport",
    "SynthOptions",
    "ValueSpec",
    "check_output",
    "export_aiperf_input",
    "exposure_warning",
    "import_aiperf_input",
    "import_aiperf_raw",
    "import_har",
    "is_exposed",
    "listen_url",
    "load_prompts",
    "parse_schedule",
    "synthesize",
]
