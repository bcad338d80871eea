"""Decode a GEN3C teacher directory into Gaussians with the Lyra decoder (static or dynamic)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from lyra_sim.camera import relative_poses
from lyra_sim.lyra.cosmos import CosmosTokenizer
from lyra_sim.lyra.decoder import LyraDecoder
from lyra_sim.lyra.gaussian_head import gaussians_from_views, packed_to_world
from lyra_sim.lyra.gen3c_dir import TeacherDataError, TeacherView, read_teacher_dir
from lyra_sim.lyra.latent_space import CosmosSpace
from lyra_sim.lyra.options import DecodeOptions
from lyra_sim.lyra.plucker import frame_times, plucker_image
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _autocast(device: torch.device):
    """bf16 autocast on CUDA (the released model is trained in bf16); full float32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _Inputs:
    """Decoder inputs of a scene, built once and reused for every target time."""

    def __init__(self, views: list[TeacherView], tokenizer: CosmosTokenizer, device: torch.device, bar: tqdm):
        reference = views[0].cam_to_world[0]
        space = CosmosSpace(tokenizer)
        latents, pluckers, self.K, self.cam_to_world = [], [], [], []
        shape = None
        for view in views:
            latent = view.latent()
            if shape is None:
                shape = latent.shape
            elif latent.shape != shape:
                raise TeacherDataError(f"{view.latent_path}: latent shape {tuple(latent.shape)} differs from "
                                       f"the first view's {tuple(shape)}")
            _, latent_frames, height, width = latent.shape
            frames = (latent_frames - 1) * tokenizer.temporal_compression + 1
            if view.num_frames != frames:
                raise TeacherDataError(f"{view.latent_path}: {latent_frames} latent frames imply {frames} video "
                                       f"frames, but the pose file has {view.num_frames}")
            latents.append(tokenizer.to_tokenizer_space(latent[None])[0])
            K = view.K().float()
            cam_to_world = relative_poses(view.cam_to_world, reference).float()
            self.K.append(K)
            self.cam_to_world.append(cam_to_world)
            full_height, full_width = height * tokenizer.spatial_compression, width * tokenizer.spatial_compression
            rays = plucker_image(K, cam_to_world, full_height, full_width)  # (F, 6, H, W)
            pluckers.append(space.encode_plucker(rays))
            del rays
            bar.update(1)
        self.frames, self.full_size = frames, (full_height, full_width)
        self.downsample = tokenizer.spatial_compression
        self.latents = torch.stack(latents)[None].to(device)
        self.plucker = torch.stack(pluckers)[None].to(device)
        self.space, self.device = space, device
        self._input_times: torch.Tensor | None = None

    def time_latents(self, target_frame: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenizer latents of the input-frame times and of one target time, per view: (1, V, 16, T, h, w)."""
        views = self.latents.shape[1]
        height, width = self.full_size
        if self._input_times is None:
            self._input_times = self.space.encode_times(frame_times(self.frames), height, width)[None].to(self.device)
        expand = (1, views, *self._input_times.shape[1:])
        return self._input_times[:, None].expand(expand), self.target_time_latent(target_frame)[:, None].expand(expand)

    def target_time_latent(self, target_frame: float) -> torch.Tensor:
        """The target time's latent as the official code makes it, (1, 16, T, h, w): see
        ``CosmosSpace.encode_target_time`` (one encoded frame, repeated)."""
        height, width = self.full_size
        target = target_frame / max(self.frames - 1, 1)
        return self.space.encode_target_time(target, self.frames, height, width)[None].to(self.device)


@torch.inference_mode()
def _decode_once(decoder: LyraDecoder, inputs: _Inputs, prune: float, device: torch.device,
                 target_frame: float | None, bar: tqdm, info: dict) -> GaussianWorld:
    input_times = target_times = None
    if target_frame is not None:
        input_times, target_times = inputs.time_latents(target_frame)
    with _autocast(device):
        tokens, (batch, views, t, h, w) = decoder.encode(inputs.latents, inputs.plucker, input_times, target_times,
                                                         progress=bar)
        tokens = tokens.view(batch, views, t, h, w, -1)
        # One view's head output at a time (a generator): (12, F, H, W) is the big tensor.
        raw_views = (decoder.head(tokens[:, v])[0].float() for v in range(views))
        gaussians = gaussians_from_views(raw_views, inputs.K, inputs.cam_to_world, inputs.downsample, prune, "cpu")
    del tokens
    return packed_to_world(gaussians, info)


def decode_teacher_dir(
    path: str | os.PathLike,
    checkpoint: str | os.PathLike | LyraDecoder,
    tokenizer: str | os.PathLike | CosmosTokenizer,
    views: Sequence[int] = DecodeOptions.views,
    prune: float = DecodeOptions.prune,
    device: str | torch.device = DecodeOptions.device,
    dynamic: bool | None = None,
    times: Sequence[float] | None = DecodeOptions.times,
    fps: float = DecodeOptions.fps,
    name: str | None = DecodeOptions.name,
    progress: bool = True,
) -> GaussianWorld | DynamicGaussianWorld:
    """Decode the teacher latents of ``views`` into one Gaussian world (Lyra's feed-forward reconstruction).

    Returns a GaussianWorld in the first camera's OpenCV frame (scene scale as the teacher's: unknown
    metric scale). With a dynamic decoder, ``times`` are target frame indices (default first, middle and last
    frame: 0, 60, 120 for Lyra's 121-frame clips): one
    forward pass each, returned as a DynamicGaussianWorld with keyframe times in seconds (frame / fps).
    """
    device = resolve_device(device)
    if isinstance(checkpoint, LyraDecoder):
        decoder = checkpoint
    else:
        decoder = LyraDecoder.from_checkpoint(checkpoint, dynamic=dynamic)
    if dynamic is not None and dynamic != decoder.config.dynamic:
        raise ValueError(f"dynamic={dynamic} does not match the decoder passed in (dynamic={decoder.config.dynamic})")
    decoder = decoder.to(device).eval()
    if not isinstance(tokenizer, CosmosTokenizer):
        tokenizer = CosmosTokenizer.from_dir(tokenizer, device=device,
                                             dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)
    scene = read_teacher_dir(path, name)
    ordered = scene.ordered(tuple(views))
    info = {"generator": "lyra", "teacher_dir": os.fspath(path), "scene": scene.name, "views": list(views),
            "prune": prune, "tokenizer": tokenizer.source}

    with tqdm(total=len(ordered), desc="latents + Plücker rays", unit="view", disable=not progress) as bar:
        inputs = _Inputs(ordered, tokenizer, device, bar)
    if not decoder.config.dynamic:
        with tqdm(total=len(decoder.enc_blocks), desc="decoder blocks", unit="block", disable=not progress) as bar:
            return _decode_once(decoder, inputs, prune, device, None, bar, info)

    last = inputs.frames - 1
    target_frames = [float(t) for t in ((0, last / 2, last) if times is None else times)]
    if any(t < 0 or t > last for t in target_frames):
        raise ValueError(f"times: target frames must lie in [0, {last}], got {target_frames}")
    worlds = []
    with tqdm(total=len(decoder.enc_blocks) * len(target_frames), desc="decoder blocks", unit="block",
              disable=not progress) as bar:
        for frame in target_frames:
            worlds.append(_decode_once(decoder, inputs, prune, device, frame, bar,
                                       {**info, "target_frame": frame, "fps": fps}))
    return DynamicGaussianWorld([t / fps for t in target_frames], worlds)
