"""Inputs: manifests (JSONL/CSV/TSV/Parquet) and image folders with ``.txt`` sidecar prompts."""

from .manifest import IMAGE_EXTENSIONS, Manifest, ManifestReader, read_manifest
from .shards import SourceRow

__all__ = ["IMAGE_EXTENSIONS", "Manifest", "ManifestReader", "SourceRow", "read_manifest"]
