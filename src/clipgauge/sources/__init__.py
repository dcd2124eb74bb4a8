"""Inputs: manifests (JSONL/CSV/TSV/Parquet) and image folders with ``.txt`` sidecar prompts."""

from .manifest import IMAGE_EXTENSIONS, Manifest, Row, read_manifest

__all__ = ["IMAGE_EXTENSIONS", "Manifest", "Row", "read_manifest"]
