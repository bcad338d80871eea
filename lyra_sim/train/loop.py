"""The self-distillation loop on accelerate: latents of teacher trajectories -> Lyra decoder -> Gaussians ->
rendered trajectories, compared with the teacher's frames and depth (masked).

One CPU process, one GPU, or many with ``accelerate launch``. Checkpoints are in the official format
(``{"module": state_dict, ...}``); the full training state (optimizer, scheduler, RNG, step) is kept by
accelerate in ``<output>/state`` so a run resumes where it stopped. Metrics go to ``<output>/metrics.csv``
and, when the tensorboard package is installed, TensorBoard.
"""

from __future__ import annotations

import csv
import json
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lyra_sim.camera import Camera, relative_poses
from lyra_sim.io.atomic import atomic_path
from lyra_sim.lyra.decoder import CheckpointError, LyraDecoder
from lyra_sim.lyra.gaussian_head import PACKED_FIELDS, gaussians_from_views, packed_to_world
from lyra_sim.lyra.latent_space import CosmosSpace, PixelSpace
from lyra_sim.lyra.plucker import frame_times, plucker_image
from lyra_sim.rendering import render
from lyra_sim.train.data_engine import SceneDataset
from lyra_sim.train.losses import (
    PerceptualLoss,
    masked_mse,
    opacity_loss,
    scale_invariant_depth_loss,
    ssim_map,
)


@dataclass
class Stage:
    """One step of the progressive schedule."""

    name: str
    steps: int
    views: tuple[int, int] = (6, 6)  # trajectories per sample: a random count in [min, max] (1-6 fusion)
    frames_per_view: int = 3  # supervised frames per trajectory per step (random)
    prune: float = 0.0  # Lyra's pruning stage: drop this fraction by opacity before rendering
    opacity_weight: float = 0.0  # lambda_opacity (0.1 in the pruning stages)
    frames: int | None = None  # use only the first 1 + 8k frames of each trajectory (Lyra: 17, then 49, ...)
    downsample: int = 1  # train at 1/downsample resolution (Lyra: 176x320, then 352x640, then 704x1280)


@dataclass
class TrainConfig:
    dataset: str
    output: str
    latent_space: str = "pixels"  # "pixels" (weightless, CPU) or "cosmos"
    tokenizer: str | None = None  # local Cosmos directory for latent_space "cosmos"
    width: int = 64
    depth: int = 4
    dynamic: bool = False
    motion_reversal: float = 0.5  # probability of a motion-reversed sample (dynamic only)
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    perceptual_weight: float = 0.5
    depth_weight: float = 0.05
    background: float = 1.0  # Lyra renders on white
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    eval_every: int = 0  # held-out PSNR/SSIM every N steps (0: only when asked) -> eval.csv, TensorBoard
    stages: list[Stage] = field(default_factory=lambda: [Stage("all views", 200)])

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TrainConfig:
        """JSON or YAML (``.yaml``/``.yml``) with these fields; ``stages`` a list of Stage fields."""
        text = Path(path).read_text()
        data = __import__("yaml").safe_load(text) if str(path).endswith((".yaml", ".yml")) else json.loads(text)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"train config: unknown fields {sorted(unknown)}")
        stages = [Stage(**{**s, "views": tuple(s.get("views", (6, 6)))}) for s in data.pop("stages", [])] or None
        config = cls(**data) if stages is None else cls(**data, stages=stages)
        config.betas = tuple(config.betas)
        return config

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)

    def stage_at(self, step: int) -> Stage:
        for stage in self.stages:
            if step < stage.steps:
                return stage
            step -= stage.steps
        return self.stages[-1]


def make_space(config: TrainConfig):
    if config.latent_space == "pixels":
        return PixelSpace()
    if config.latent_space == "cosmos":
        if not config.tokenizer:
            raise ValueError("latent_space 'cosmos' needs 'tokenizer' (a local Cosmos directory)")
        from lyra_sim.lyra.cosmos import CosmosTokenizer

        return CosmosSpace(CosmosTokenizer.from_dir(config.tokenizer))
    raise ValueError(f"latent_space: expected 'pixels' or 'cosmos', got {config.latent_space!r}")


def build_model(config: TrainConfig, space) -> LyraDecoder:
    return LyraDecoder(space.decoder_config(width=config.width, depth=config.depth, dynamic=config.dynamic))


@dataclass
class Sample:
    """Decoder inputs and supervision for the chosen trajectories of one scene."""

    latents: torch.Tensor  # (1, V, C, T, h, w)
    plucker: torch.Tensor
    K: torch.Tensor  # (V, F, 3, 3)
    cam_to_world: torch.Tensor  # (V, F, 4, 4), relative to the first chosen view's first frame
    frames: torch.Tensor  # (V, F, H, W, 3) in [0, 1]
    depth: torch.Tensor  # (V, F, H, W)
    masks: torch.Tensor  # (V, F, H, W) bool
    input_times: torch.Tensor | None = None
    target_times: torch.Tensor | None = None


def _reduce(scene: dict, views: list[int], frames: int | None, downsample: int) -> dict[str, torch.Tensor]:
    """The chosen trajectories, their first ``frames`` frames, at 1/``downsample`` resolution (block means;
    a block is valid only if all its pixels are, and its depth is their mean)."""
    count = scene["frames"].shape[1] if frames is None else frames
    if (count - 1) % 8 or count > scene["frames"].shape[1]:
        raise ValueError(f"stage frames: expected 1 + 8k <= {scene['frames'].shape[1]}, got {count}")
    height, width = scene["frames"].shape[2:4]
    if height % (16 * downsample) or width % (16 * downsample):
        raise ValueError(f"stage downsample {downsample}: {width}x{height} frames would not give an even latent grid "
                         f"(need multiples of {16 * downsample})")
    picked = {name: scene[name][views, :count] for name in ("frames", "depth", "masks", "world_to_cam", "K")}
    picked["frames"] = picked["frames"].float() / 255.0
    picked["depth"], picked["masks"] = picked["depth"].float(), picked["masks"].bool()
    if downsample > 1:
        def pool(x: torch.Tensor) -> torch.Tensor:  # (V, F, H, W, C) -> block means
            v, f, h, w, c = x.shape
            return x.reshape(v, f, h // downsample, downsample, w // downsample, downsample, c).mean(dim=(3, 5))

        picked["frames"] = pool(picked["frames"])
        picked["depth"] = pool(picked["depth"][..., None])[..., 0]
        picked["masks"] = pool(picked["masks"].float()[..., None])[..., 0] == 1.0
        picked["K"] = picked["K"].clone()
        picked["K"][..., :2, :] /= downsample
    return picked


def prepare_sample(scene: dict, views: list[int], space, dynamic: bool = False, target_time: float = 0.0,
                   reverse: bool = False, frames: int | None = None, downsample: int = 1) -> Sample:
    """Encode the chosen trajectories of a shard. ``reverse`` (dynamic): the input video runs backwards, so
    the target time t becomes 1 - t and the input-frame times are reversed (Lyra's motion reversal).
    ``frames`` and ``downsample`` select a stage of the progressive schedule."""
    picked = _reduce(scene, views, frames, downsample)
    frames = picked["frames"]
    cam_to_world = relative_poses(torch.linalg.inv(picked["world_to_cam"].double())).float()
    K = picked["K"].float()
    count, num_frames, height, width = frames.shape[:4]
    encoded_frames = frames.flip(1) if reverse else frames
    latents = torch.stack([space.encode_video(encoded_frames[v]) for v in range(count)])[None]
    plucker = torch.stack([space.encode_plucker(plucker_image(K[v], cam_to_world[v], height, width))
                           for v in range(count)])[None]
    sample = Sample(latents, plucker, K, cam_to_world, frames, picked["depth"], picked["masks"])
    if dynamic:
        times = frame_times(num_frames)
        times = times.flip(0) if reverse else times
        target = 1.0 - target_time if reverse else target_time
        expand = (1, count, -1, -1, -1, -1)
        sample.input_times = space.encode_times(times, height, width)[None, None].expand(expand)
        sample.target_times = space.encode_target_time(target, num_frames, height, width)[None, None].expand(expand)
    return sample


def decode_gaussians(model: LyraDecoder, sample: Sample, prune: float = 0.0) -> torch.Tensor:
    """Packed Gaussians (N, 14) of all chosen trajectories (differentiable)."""
    raw = model(sample.latents, sample.plucker, sample.input_times, sample.target_times)[0]  # (V, 12, F, h, w)
    downsample = sample.frames.shape[2] // raw.shape[3]  # the head's grid vs the frames that K describes
    if raw.shape[3] * downsample != sample.frames.shape[2] or raw.shape[4] * downsample != sample.frames.shape[3]:
        raise ValueError(f"decoder output {tuple(raw.shape[3:])} does not tile the {tuple(sample.frames.shape[2:4])} "
                         "frames")
    return gaussians_from_views(raw.float(), sample.K, sample.cam_to_world, downsample, prune)


def render_packed(packed: torch.Tensor, K: torch.Tensor, cam_to_world: torch.Tensor, width: int, height: int,
                  background: float):
    world = packed_to_world(packed, validate=False)
    camera = Camera(K.cpu(), torch.linalg.inv(cam_to_world.double().cpu()).float(), width, height)
    return render(world, camera, background=(background,) * 3)


class Trainer:
    def __init__(self, config: TrainConfig):
        from accelerate import Accelerator

        self.config = config
        self.output = Path(config.output)
        self.output.mkdir(parents=True, exist_ok=True)
        trackers = ["tensorboard"] if _has_tensorboard() else None
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available(), log_with=trackers,
                                       mixed_precision="bf16" if torch.cuda.is_available() else "no",
                                       project_dir=str(self.output))
        torch.manual_seed(config.seed)
        self.space = make_space(config)
        self.dataset = SceneDataset(config.dataset, "train")
        self.held_out = SceneDataset(config.dataset, "held_out")
        self.perceptual = PerceptualLoss()
        model = build_model(config, self.space)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas,
                                      weight_decay=config.weight_decay)
        warmup = max(config.warmup_steps, 1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        self.step = 0
        if (self.output / "state").is_dir():
            self.accelerator.load_state(str(self.output / "state"))
            self.step = json.loads((self.output / "state" / "progress.json").read_text())["step"]
        if trackers:
            self.accelerator.init_trackers("lyra_sim", config={"latent_space": config.latent_space,
                                                                "perceptual": self.perceptual.name})

    # --- one step -----------------------------------------------------------------------------------------
    def losses(self, sample: Sample, stage: Stage, rng: random.Random) -> dict[str, torch.Tensor]:
        config = self.config
        packed = decode_gaussians(self.model, sample, stage.prune)
        height, width = sample.frames.shape[2:4]
        chosen = [(v, f) for v in range(sample.frames.shape[0])
                  for f in rng.sample(range(sample.frames.shape[1]), min(stage.frames_per_view,
                                                                          sample.frames.shape[1]))]
        views, frames = zip(*chosen, strict=True)
        result = render_packed(packed, sample.K[list(views), list(frames)],
                               sample.cam_to_world[list(views), list(frames)], width, height, config.background)
        target = sample.frames[list(views), list(frames)]
        mask = sample.masks[list(views), list(frames)]
        teacher_depth = sample.depth[list(views), list(frames)]
        terms = {
            "mse": masked_mse(result.rgb, target, mask),
            "perceptual": self.perceptual(result.rgb.clamp(0, 1), target, mask),
            "depth": scale_invariant_depth_loss(result.depth.reshape(mask.shape), teacher_depth,
                                                mask & (teacher_depth > 0)),
            "opacity": opacity_loss(packed[:, PACKED_FIELDS["opacity"]]),
        }
        terms["total"] = (terms["mse"] + config.perceptual_weight * terms["perceptual"]
                          + config.depth_weight * terms["depth"] + stage.opacity_weight * terms["opacity"])
        return terms

    def train_step(self, rng: random.Random) -> dict[str, float]:
        config, stage = self.config, self.config.stage_at(self.step)
        scene = self.dataset[rng.randrange(len(self.dataset))]
        count = rng.randint(*stage.views)
        views = sorted(rng.sample(range(scene["frames"].shape[0]), min(count, scene["frames"].shape[0])))
        reverse = config.dynamic and rng.random() < config.motion_reversal
        sample = prepare_sample(scene, views, self.space, config.dynamic, rng.random(), reverse, stage.frames,
                                stage.downsample)
        sample = _to_device(sample, self.accelerator.device)
        self.model.train()
        with self.accelerator.autocast():
            terms = self.losses(sample, stage, rng)
        self.optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(terms["total"])
        if config.grad_clip > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return {k: float(v.detach()) for k, v in terms.items()} | {"views": len(views), "reversed": int(reverse),
                                                                     "lr": self.scheduler.get_last_lr()[0]}

    # --- run ----------------------------------------------------------------------------------------------
    def train(self, steps: int | None = None, progress: bool = True) -> list[dict[str, float]]:
        """Run up to ``steps`` more steps (default: to the end of the schedule); returns the logged rows."""
        end = self.config.total_steps if steps is None else min(self.step + steps, self.config.total_steps)
        rng = random.Random(self.config.seed * 1_000_003 + self.step)
        history = []
        with tqdm(total=end - self.step, desc="training", unit="step", disable=not progress) as bar:
            while self.step < end:
                row = {"step": self.step + 1, "stage": self.config.stage_at(self.step).name} | self.train_step(rng)
                history.append(row)
                bar.update(1)
                bar.set_postfix(loss=f"{row['total']:.4f}")
                if self.step % self.config.log_every == 0 or self.step == end:
                    self._log(row)
                if self.step % self.config.checkpoint_every == 0 or self.step == end:
                    self.save()
                if self.config.eval_every and self.step % self.config.eval_every == 0:
                    self.evaluate()
        return history

    def _log(self, row: dict, name: str = "train") -> None:
        path = self.output / ("metrics.csv" if name == "train" else f"{name}.csv")
        new = not path.exists()
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.accelerator.log({f"{name}/{k}": v for k, v in row.items() if isinstance(v, int | float)}, step=self.step)

    def save(self) -> Path:
        """Official-format checkpoint (``checkpoints/step_N.pt`` and ``last.pt``) and the resumable state."""
        model = self.accelerator.unwrap_model(self.model)
        payload = model.official_checkpoint() | {"perceptual": self.perceptual.name,
                                                 "train_config": _jsonable(self.config)}
        folder = self.output / "checkpoints"
        folder.mkdir(exist_ok=True)
        path = folder / f"step_{self.step:06d}.pt"
        for target in (path, folder / "last.pt"):
            with atomic_path(target) as tmp:
                torch.save(payload, tmp)
        self.accelerator.save_state(str(self.output / "state"))
        (self.output / "state" / "progress.json").write_text(json.dumps({"step": self.step}))
        return path

    def evaluate(self, max_scenes: int | None = None) -> dict[str, float]:
        """PSNR and SSIM (valid pixels) of all six trajectories of the held-out scenes; logged to eval.csv."""
        metrics = evaluate(self.accelerator.unwrap_model(self.model), self.held_out, self.space, self.config,
                           max_scenes)
        self._log({"step": self.step} | metrics, name="eval")
        return metrics


def evaluate(model: LyraDecoder, dataset: SceneDataset, space, config: TrainConfig,
             max_scenes: int | None = None) -> dict[str, float]:
    model.eval()
    psnrs, ssims = [], []
    with torch.no_grad():
        for index in range(len(dataset) if max_scenes is None else min(max_scenes, len(dataset))):
            scene = dataset[index]
            views = list(range(scene["frames"].shape[0]))
            sample = prepare_sample(scene, views, space, config.dynamic, 0.0, False)
            packed = decode_gaussians(model, sample)
            height, width = sample.frames.shape[2:4]
            for v in views:
                result = render_packed(packed, sample.K[v], sample.cam_to_world[v], width, height,
                                       config.background)
                mask = sample.masks[v]
                error = ((result.rgb - sample.frames[v]) ** 2).mean(-1)
                mse = (error * mask).sum() / mask.sum().clamp_min(1)
                psnrs.append(float(-10 * torch.log10(mse.clamp_min(1e-10))))
                ssims.append(float((ssim_map(result.rgb.clamp(0, 1), sample.frames[v]) * mask).sum()
                                   / mask.sum().clamp_min(1)))
    return {"psnr": sum(psnrs) / max(len(psnrs), 1), "ssim": sum(ssims) / max(len(ssims), 1),
            "trajectories": len(psnrs)}


def evaluate_checkpoint(checkpoint: str | os.PathLike, dataset: str | os.PathLike | None = None,
                        split: str = "held_out") -> dict[str, float]:
    """``evaluate`` a checkpoint written by the Trainer on ``split`` of ``dataset`` (default: its training set)."""
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "train_config" not in payload:
        raise CheckpointError(f"{checkpoint}: no train_config (was it written by `lyra-sim train`?)")
    config = TrainConfig.from_dict(payload["train_config"])
    model = LyraDecoder.from_checkpoint(checkpoint)
    return evaluate(model, SceneDataset(dataset or config.dataset, split), make_space(config), config)


def _to_device(sample: Sample, device: torch.device) -> Sample:
    for name in ("latents", "plucker", "input_times", "target_times"):
        value = getattr(sample, name)
        if value is not None:
            setattr(sample, name, value.to(device))
    return sample


def _jsonable(config: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True

