"""Loading from the Hugging Face hub without its noise: clipgauge reports a failed load in one line of its own.

* :func:`quiet_loading` keeps huggingface_hub's logger to errors while a model loads (it logs
  ``'[Errno -2] Name or service not known' thrown while requesting HEAD …`` and ``Retrying in 1s`` itself),
  and keeps the root logger quiet too: open_clip reports failures with ``logging.error`` before raising them.
* :func:`hub_unreachable` — for files not in the local cache, one request to the hub (no retries) tells
  whether it can be reached; huggingface_hub would otherwise retry five times with back-off (~25 s) per file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence huggingface_hub's warnings and ``logging.error`` lines during a model load (restored after)."""
    try:
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:  # pragma: no cover - transformers and open_clip need huggingface_hub
        hub_logging = None
    verbosity = hub_logging.get_verbosity() if hub_logging is not None else None
    if hub_logging is not None:
        hub_logging.set_verbosity_error()
    disabled = logging.root.manager.disable
    logging.disable(max(disabled, logging.ERROR))  # every failure becomes clipgauge's own line
    try:
        yield
    finally:
        logging.disable(disabled)
        if hub_logging is not None:
            hub_logging.set_verbosity(verbosity)


def hub_unreachable(repo_id: str, filenames: Sequence[str]) -> bool:
    """True when none of *filenames* of the hub repo *repo_id* is in the local cache and one request for the
    first (no retries) fails for want of a connection (no network, offline mode, timeout). False when a file is
    cached, the hub answered (even "not found": the load then says what), or the question cannot be asked."""
    try:
        from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:  # pragma: no cover - an old huggingface_hub: let the load try
        return False
    try:
        if any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in filenames):
            return False  # cached: the load falls back to the cache without retrying
    except Exception:  # noqa: BLE001 - not a valid repo id: the load says what
        return False
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filenames[0]), timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except HfHubHTTPError:
        return False
    except Exception:  # noqa: BLE001 - no connection, offline mode, timeout
        return True
    return False
