"""Outputs: the sink seam (:mod:`.sink`), per-row results files and folders, and run summaries.

Importing this package registers the built-in sinks: the results formats (:mod:`.formats`) and the filter's
outputs (:mod:`.filter_outputs`).
"""

from . import filter_outputs, formats  # noqa: F401 - registers the built-in sinks
from .reader import ResultsReader, read_results
from .results import write_results
from .sink import Sink, open_sink, register_sink, sink_for
from .summary import summary_path, write_summary

__all__ = ["ResultsReader", "Sink", "open_sink", "read_results", "register_sink", "sink_for", "summary_path",
           "write_results", "write_summary"]
