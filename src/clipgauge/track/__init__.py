"""Training-time CLIP tracking: score validation images while a model fine-tunes.

>>> from clipgauge.track import CLIPTracker
>>> tracker = CLIPTracker("openai/clip-vit-base-patch32", prompts="default",
...                       writers=["tensorboard:runs/ft"], alerts=["drop:0.03"])   # doctest: +SKIP
>>> result = tracker.log(step, pipe(tracker.prompts).images)                          # doctest: +SKIP
>>> result["clip/mean"], result["clip/min"], result["clip/max"]                      # doctest: +SKIP

Importing this package imports no optional dependency (TensorBoard, W&B, Lightning); each writer or
integration imports its own when it is used.
"""

from .alerts import Alert, AlertMonitor, DropFromBest, Floor, NoImprovement, Rule, parse_rule
from .prompts import PromptLibrary, default_library, load_prompt_library
from .result import Extreme, PromptScores, TrackResult
from .tracker import CLIPTracker
from .writers import CSVWriter, JSONLWriter, Writer, make_writer

__all__ = [
    "Alert",
    "AlertMonitor",
    "CLIPTracker",
    "CSVWriter",
    "DropFromBest",
    "Extreme",
    "Floor",
    "JSONLWriter",
    "NoImprovement",
    "PromptLibrary",
    "PromptScores",
    "Rule",
    "TrackResult",
    "Writer",
    "default_library",
    "load_prompt_library",
    "make_writer",
    "parse_rule",
]
