"""Defaults shared by the API and the CLI (no heavy imports here)."""

#: The default model: what torchmetrics' ``CLIPScore`` uses.
DEFAULT_MODEL = "openai/clip-vit-large-patch14"
