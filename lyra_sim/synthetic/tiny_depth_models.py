"""Tiny randomly initialised transformers depth models with known outputs, and a Hugging Face cache to hold them:
what tests and benchmarks use instead of downloading Depth Anything or Depth Pro (nothing here touches a network).

The heads' last layers are set so the output is known in closed form: the metric Depth Anything predicts
``METRIC_DEPTH`` metres everywhere (``sigmoid(bias) * max_depth``); Depth Pro predicts the canonical inverse
depth ``INVERSE`` everywhere and a field of view of ``FOV`` degrees, so its metric depth is ``f / (W * INVERSE)``
with ``f = W / 2 / tan(FOV / 2)``. The relative Depth Anything keeps random weights (a varying disparity).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the snapshot revision written into caches
MAX_DEPTH = 20  # an int, as DepthAnythingConfig types it (the indoor checkpoints' value)
METRIC_DEPTH = 4.0
FOV = 50.0
INVERSE = 0.25
CARD = "---\nlicense: apache-2.0\ntags:\n- depth-estimation\n---\n# a tiny random model\n"


def _dinov2():
    from transformers import Dinov2Config

    return Dinov2Config(image_size=56, patch_size=14, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
                        initializer_range=0.1)


def save_depth_anything(folder: str | os.PathLike, metric: bool) -> Path:
    """A tiny Depth Anything (relative, or metric with a constant ``METRIC_DEPTH``), its processor and model card."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTImageProcessorPil

    folder = Path(folder)
    config = DepthAnythingConfig(
        backbone_config=_dinov2(), reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8, initializer_range=0.1,
        depth_estimation_type="metric" if metric else "relative", max_depth=MAX_DEPTH if metric else 1)
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():
        if metric:  # a constant output: sigmoid(b) * max_depth
            model.head.conv3.weight.zero_()
            model.head.conv3.bias.fill_(math.log(METRIC_DEPTH / (MAX_DEPTH - METRIC_DEPTH)))
        else:  # random weights predict ~0 everywhere: lift the head so its output varies and is > 0
            model.head.conv2.bias.fill_(0.5)
            model.head.conv3.bias.fill_(0.5)
    model.save_pretrained(folder)
    DPTImageProcessorPil(size={"height": 56, "width": 56}, keep_aspect_ratio=False, do_pad=False).save_pretrained(
        folder)
    (folder / "README.md").write_text(CARD)
    return folder


def save_depth_pro(folder: str | os.PathLike) -> Path:
    """A tiny Depth Pro with its field-of-view head: inverse depth ``INVERSE`` and ``FOV`` degrees everywhere."""
    import torch
    from transformers import DepthProConfig, DepthProForDepthEstimation

    folder = Path(folder)
    encoder = dict(model_type="dinov2", image_size=16, patch_size=4, hidden_size=16, num_hidden_layers=2,
                   num_attention_heads=2, intermediate_size=32)
    config = DepthProConfig(
        patch_size=16, fusion_hidden_size=16, intermediate_hook_ids=[1, 0], intermediate_feature_dims=[8, 8],
        scaled_images_ratios=[0.5, 1.0], scaled_images_overlap_ratios=[0.0, 0.25], scaled_images_feature_dims=[8, 8],
        use_fov_model=True, num_fov_head_layers=1, image_model_config=dict(encoder),
        patch_model_config=dict(encoder), fov_model_config=dict(encoder))
    torch.manual_seed(0)
    model = DepthProForDepthEstimation(config).eval()
    with torch.no_grad():
        model.fov_model.head.layers[-1].weight.zero_()
        model.fov_model.head.layers[-1].bias.fill_(FOV)
        model.head.layers[-2].weight.zero_()  # the conv before the final ReLU: canonical inverse depth = INVERSE
        model.head.layers[-2].bias.fill_(INVERSE)
    model.save_pretrained(folder)
    # DepthProImageProcessor needs torchvision (no build for the pinned CPU torch): its config, with the keys the
    # Hub's apple/DepthPro-hf holds, at a tiny size
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "DepthProImageProcessor", "do_resize": True, "do_rescale": True,
        "do_normalize": True, "size": {"height": 32, "width": 32}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
        "rescale_factor": 1 / 255, "resample": 2}))
    (folder / "README.md").write_text(CARD)
    return folder


def cache_snapshot(cache: str | os.PathLike, repo_id: str, folder: str | os.PathLike, commit: str = COMMIT) -> Path:
    """Lay ``folder`` out in a Hugging Face hub cache as huggingface_hub does: content-addressed blobs, a snapshot
    of relative symlinks named by commit, and refs/main naming that commit. Returns the snapshot folder."""
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
