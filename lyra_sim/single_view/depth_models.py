"""Finding a monocular depth model: a local transformers directory, or a Hugging Face model id.

A model id is looked up in the Hugging Face cache first (no network); if it is not there and the
Hub is allowed (``HF_HUB_OFFLINE`` unset), it is downloaded into that cache once with
huggingface_hub's progress bars and reused afterwards, as transformers and diffusers do. Every
request to the Hub has a timeout, and every failure is one :class:`DepthModelError` line naming the
model and the ``lyra-sim fetch-model`` command. Only ``.safetensors`` weights are fetched and loaded
(pickled ``.bin`` weights can run code). huggingface_hub is imported only when a model is named.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lyra_sim.defaults import EXAMPLE_DEPTH_MODEL as EXAMPLE_MODEL
from lyra_sim.inputs.images import InputError

SUPPORTED_MODEL_TYPES = {"depth_anything": "Depth Anything", "depth_pro": "Depth Pro"}
MODEL_FILES = ["*.json", "*.safetensors", "README.md", "LICENSE*"]  # config, processor, weights, licence
HUB_TIMEOUT_S = 20.0  # seconds, for each part of a Hub request (connect, read, write, pool) that has none


class DepthModelError(InputError):
    """A named depth model cannot be found, fetched or used."""


@dataclass(frozen=True)
class DepthModelSource:
    """Where a depth model's files are: ``path`` holds config.json and .safetensors weights."""

    name: str  # as the user gave it: a directory or a model id
    path: Path
    repo_id: str | None = None  # set when the files came from the Hugging Face cache
    revision: str | None = None  # the cached snapshot's commit
    licence: str | None = None  # from the model card, when it states one

    def describe(self) -> str:
        """One line: the model, where its files are, and its licence (the user's to accept)."""
        where = f"Hugging Face cache {self.path}" if self.repo_id else f"local directory {self.path}"
        licence = self.licence or "not stated in its model card"
        return f"{self.name} ({where}; licence: {licence})"

    def info(self) -> dict:
        """For ``world.info["depth_model"]``."""
        return {"name": self.name, "path": str(self.path), "repo_id": self.repo_id, "revision": self.revision,
                "licence": self.licence}


def fetch_command(name: str) -> str:
    return f"lyra-sim fetch-model {name}"


def resolve_depth_model(name: str | os.PathLike) -> DepthModelSource:
    """The files of depth model ``name``: a local directory as it is, else a model id from the Hugging Face cache,
    downloaded into it first when missing and the Hub may be reached (``HF_HUB_OFFLINE`` unset)."""
    text = os.fspath(name)
    path = Path(text).expanduser()
    if path.is_dir():
        return _checked(DepthModelSource(text, path.resolve()))
    if path.exists():
        raise DepthModelError(f"depth model {text}: not a directory (expected a transformers model folder or a "
                              "Hugging Face model id)")
    repo_id = _model_id(text)
    cached = cached_depth_model(repo_id)
    if cached is not None:
        return _checked(cached)
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise DepthModelError(f"depth model {repo_id}: no such local directory, and not in the Hugging Face cache "
                              f"({constants.HF_HUB_CACHE}) while HF_HUB_OFFLINE is set; on a machine with a network "
                              f"run `{fetch_command(repo_id)}`")
    return fetch_depth_model(repo_id)


def cached_depth_model(repo_id: str) -> DepthModelSource | None:
    """The cached snapshot of ``repo_id`` (its ``main`` revision), without touching the network; None if absent."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo_id, allow_patterns=MODEL_FILES, local_files_only=True)
    except LocalEntryNotFoundError:
        return None
    return _hub_source(repo_id, Path(folder))


def fetch_depth_model(repo_id: str) -> DepthModelSource:
    """Download ``repo_id`` (config, processor, .safetensors weights, model card) into the Hugging Face cache with
    progress bars, after checking from its config.json that it is a model type lyra_sim runs."""
    from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
    from huggingface_hub.errors import (  # HTTPError: the HTTP client's own (httpx), which hub errors extend
        EntryNotFoundError,
        GatedRepoError,
        HTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id = _model_id(repo_id)
    if constants.is_offline_mode():
        raise DepthModelError(f"depth model {repo_id}: HF_HUB_OFFLINE is set, so nothing can be downloaded; unset it "
                              f"on a machine with a network and run `{fetch_command(repo_id)}`")
    try:
        with _bounded_hub_timeouts():
            # one request first, never retried: an unreachable Hub fails in HUB_TIMEOUT_S, not after the
            # download calls' five retries with back-off
            HfApi().model_info(repo_id, timeout=HUB_TIMEOUT_S)
            config = hf_hub_download(repo_id, "config.json", etag_timeout=HUB_TIMEOUT_S)
            _supported_type(repo_id, Path(config))
            folder = snapshot_download(repo_id, allow_patterns=MODEL_FILES, etag_timeout=HUB_TIMEOUT_S)
    except GatedRepoError as exc:
        raise DepthModelError(f"depth model {repo_id}: gated on the Hugging Face Hub; accept its terms on the model "
                              "page and log in (`hf auth login`), then retry") from exc
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise DepthModelError(f"depth model {repo_id}: no such local directory, and no such model on the Hugging "
                              "Face Hub (private models need `hf auth login`)") from exc
    except LocalEntryNotFoundError as exc:  # before EntryNotFoundError, its base: the Hub was unreachable
        raise DepthModelError(_unreachable(repo_id, exc)) from exc
    except EntryNotFoundError as exc:  # before HTTPError: the Hub answered that config.json is not there
        raise DepthModelError(f"depth model {repo_id}: not a transformers model (no config.json; Depth Anything V2 "
                              "checkpoints for transformers are the repositories ending in -hf)") from exc
    except HTTPError as exc:
        raise DepthModelError(_unreachable(repo_id, exc)) from exc
    except OSError as exc:
        raise DepthModelError(f"depth model {repo_id}: download failed ({_reason(exc)}); run "
                              f"`{fetch_command(repo_id)}` again where there is a network") from exc
    return _checked(_hub_source(repo_id, Path(folder)))


def _unreachable(repo_id: str, exc: BaseException) -> str:
    return (f"depth model {repo_id}: not in the Hugging Face cache and the Hub could not be reached ({_reason(exc)}); "
            f"run `{fetch_command(repo_id)}` where there is a network")


def load_config(source: DepthModelSource) -> dict:
    """The model's config.json, checked to be a supported model type."""
    return _supported_type(source.name, source.path / "config.json")


def _model_id(text: str) -> str:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        raise DepthModelError(f"depth model {text}: no such directory, and not a Hugging Face model id "
                              f"(owner/name, e.g. {EXAMPLE_MODEL})") from None
    if "/" not in text or text.startswith((".", "~", "/")):
        raise DepthModelError(f"depth model {text}: no such directory, and not a Hugging Face model id "
                              f"(owner/name, e.g. {EXAMPLE_MODEL})")
    return text


def _hub_source(repo_id: str, folder: Path) -> DepthModelSource:
    return DepthModelSource(repo_id, folder, repo_id=repo_id, revision=folder.name, licence=_licence(folder))


def _licence(folder: Path) -> str | None:
    """The model card's ``license`` (with ``license_name`` when it is "other"), if the card is cached and says."""
    from huggingface_hub import metadata_load

    card = folder / "README.md"
    if not card.is_file():
        return None
    try:
        meta = metadata_load(card) or {}
    except (ValueError, OSError, UnicodeDecodeError):
        return None
    licence = meta.get("license")
    if licence == "other" and meta.get("license_name"):
        return f"other ({meta['license_name']})"
    return str(licence) if licence else None


def _checked(source: DepthModelSource) -> DepthModelSource:
    """``source`` if it has a supported config and .safetensors weights."""
    if not (source.path / "config.json").is_file():
        raise DepthModelError(f"depth model {source.name}: {source.path} is not a transformers model directory "
                              "(no config.json)")
    load_config(source)
    if not any(source.path.glob("*.safetensors")):
        hint = f"; run `{fetch_command(source.repo_id)}`" if source.repo_id else ""
        raise DepthModelError(f"depth model {source.name}: no .safetensors weights in {source.path} (pickled .bin "
                              f"weights are not loaded: save_pretrained writes safetensors){hint}")
    return source


def _supported_type(name: str, config_path: Path) -> dict:
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise DepthModelError(f"depth model {name}: unreadable config.json ({exc})") from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise DepthModelError(f"depth model {name}: model type {model_type!r} is not supported (supported: "
                              f"{', '.join(SUPPORTED_MODEL_TYPES.values())})")
    return config


def _reason(exc: BaseException) -> str:
    """The root cause of a Hub failure, on one line."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fill_timeouts(request) -> None:
    timeouts = dict(request.extensions.get("timeout") or {})
    request.extensions["timeout"] = {key: HUB_TIMEOUT_S if timeouts.get(key) is None else timeouts[key]
                                     for key in ("connect", "read", "write", "pool")}


@contextlib.contextmanager
def _bounded_hub_timeouts() -> Iterator[None]:
    """Give every Hub request of the block a timeout. huggingface_hub's metadata calls inside ``snapshot_download``
    (repo info, file listing) pass ``timeout=None``, which waits forever on a network that drops packets; a
    request hook on its shared client fills in ``HUB_TIMEOUT_S`` wherever a request has none."""
    from huggingface_hub import get_session

    hooks = get_session().event_hooks
    hooks["request"].append(_fill_timeouts)
    try:
        yield
    finally:
        hooks["request"].remove(_fill_timeouts)
