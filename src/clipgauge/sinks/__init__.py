"""Outputs: per-row results files and run summaries."""

from .results import RESULT_FORMATS, read_results, write_results
from .summary import summary_path, write_summary

__all__ = ["RESULT_FORMATS", "read_results", "summary_path", "write_results", "write_summary"]
