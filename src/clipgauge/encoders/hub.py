"""Loading from the Hugging Face hub without its noise: clipgauge reports a failed load in one line of its own.

* :func:`quiet_loading` keeps huggingface_hub's logger to errors while a model loads (it logs
  ``'[Errno -2] Name or service not known' thrown while requesting HEAD …`` and ``Retrying in 1s`` itself),
  and keeps the root logger quiet too: open_clip reports failures with ``logging.error`` before raising them.
* :func:`hub_unreachable` — for files not in the local cache, one request to the hub (no retries) tells
  whether it can be reached; huggingface_hub would otherwise retry five times with back-off (~25 s) per file.
* :func:`resolve_weight_file` — a metric's weight file given as a local file or a hub file ``ORG/NAME/FILE``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, UsageError
from .spec import HUB_ID


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


def resolve_weight_file(text: str, what: str, example: str) -> tuple[Path, dict[str, Any]]:
    """``(local path, source)`` of a weight file given as a local file or a hub file ``ORG/NAME/FILE`` (downloaded
    into the Hugging Face cache when missing). *what* names it in messages (``aesthetic head 'x'``); *example*
    shows a valid value. One-line errors when it cannot be found, reached or downloaded."""
    local = Path(text).expanduser()
    if local.is_file():
        return local.resolve(), {"source": "file"}
    if local.is_dir():
        raise UsageError(f"{what} is a folder; give the file itself (e.g. {example})")
    parts = text.split("/")
    if len(parts) < 3 or not HUB_ID.match("/".join(parts[:2])):
        raise UsageError(f"{what}: no such file (give a file or a hub file ORG/NAME/FILE, e.g. {example})")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    with quiet_loading():
        if hub_unreachable(repo, [filename]):
            raise ModelLoadError(f"{what}: file {filename} of hub repo {repo} is not in the local Hugging Face cache "
                                 f"and the hub cannot be reached; download it where there is network (hf download "
                                 f"{repo} {filename}) and copy the cache, or give a local copy of the file")
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(repo, filename))
        except Exception as exc:  # noqa: BLE001 - not found, no access, no network: one line that says which
            reason = " ".join(str(exc).split())[:200]
            raise ModelLoadError(f"{what}: file {filename} of hub repo {repo} could not be downloaded: "
                                 f"{reason}") from None
    return path, {"source": "hub", "repo_id": repo, "filename": filename}
