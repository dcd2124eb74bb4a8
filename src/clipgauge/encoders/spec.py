"""A model spec string, parsed once (no heavy imports: parsing never imports torch)."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A Hugging Face hub id: ``ORG/NAME``.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSpec:
    """What a model spec names, and which loader family builds it.

    ============================  ===============  ==========================  ============  ==============
    text                          family           source                      arch          pretrained
    ============================  ===============  ==========================  ============  ==============
    ``demo``                      ``demo``         None                        None          None
    ``hf:ID_OR_DIR``              ``transformers`` ``ID_OR_DIR``               None          None
    ``ORG/NAME`` or a folder      ``transformers`` the text                    None          None
    ``open_clip:ARCH:PRETRAINED`` ``open_clip``    None                        ``ARCH``      ``PRETRAINED``
    ``open_clip:hf-hub:ORG/NAME`` ``open_clip``    ``ORG/NAME``                ``hf-hub:…``  None
    ``PREFIX:REST`` (registered)  its family       ``REST``                    None          None
    a weight file (options only)  ``file``         path, ``ORG/NAME/FILE``     None          None
    ============================  ===============  ==========================  ============  ==============

    A weight file comes only from :func:`~clipgauge.encoders.registry.parse_model_option` of an option that takes
    one (``hpsv2:checkpoint=``, ``aesthetic:head=``): a local file or a hub file, optionally after ``hf:``.
    """

    #: the loader family: ``transformers``, ``open_clip``, ``demo``, or a registered one
    family: str
    #: the spec as written (stripped): what provenance and messages show
    text: str
    #: hub id or local folder (transformers), ``ORG/NAME`` (OpenCLIP hub), the rest after a registered prefix
    source: str | None = None
    #: OpenCLIP architecture (``ViT-B-32``), or ``hf-hub:ORG/NAME`` for an OpenCLIP model on the hub
    arch: str | None = None
    #: OpenCLIP pretrained tag (``laion2b_s34b_b79k``) or checkpoint path
    pretrained: str | None = None

    def __str__(self) -> str:
        return self.text
