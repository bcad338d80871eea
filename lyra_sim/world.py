"""Gaussian worlds: the one data type every part of lyra_sim passes around.

In memory a world holds *activated* values (README, "Conventions"): positions (N,3), unit real-first
quaternions (N,4), linear scales (N,3), opacities in [0,1] (N,) and SH colour coefficients
(N,K,3) with K=(deg+1)^2.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from lyra_sim.errors import LyraSimError
from lyra_sim.rotations import quat_multiply, rotmat_to_quat
from lyra_sim.sh import C0 as SH_C0  # noqa: F401  (public name: callers import the DC constant from here)
from lyra_sim.sh import rgb_to_sh0, sh0_to_rgb

FRAMES = ("opencv", "z_up")
#: Rotation taking OpenCV camera axes (x right, y down, z forward) to REP-103 axes (x forward, y left, z up).
OPENCV_TO_Z_UP = ((0.0, 0.0, 1.0), (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0))


class WorldError(LyraSimError):
    """A world's arrays are malformed (shape, dtype, non-finite or out-of-range values)."""


def _as_float_tensor(name: str, value, device=None) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    elif not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise WorldError(f"{name}: cannot convert {type(value).__name__} to a tensor ({exc})") from exc
    if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64, torch.uint8)):
        raise WorldError(f"{name}: expected a real numeric array, got dtype {value.dtype}")
    if value.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        value = value.float()  # integers and float8 (no isfinite, no arithmetic): float32
    if device is not None:
        value = value.to(device)
    return value


def _observed_mask(observed, means: torch.Tensor) -> torch.Tensor:
    """The per-Gaussian ``observed`` flags as a bool tensor on the means' device (all True when absent)."""
    if observed is None:
        return torch.ones(means.shape[0] if means.ndim else 0, dtype=torch.bool, device=means.device)
    if isinstance(observed, np.ndarray):
        observed = torch.from_numpy(np.ascontiguousarray(observed))
    return torch.as_tensor(observed, device=means.device).reshape(-1).to(torch.bool)


def _unit_quaternions(quats: torch.Tensor) -> torch.Tensor:
    """Normalise in float64 after dividing by the largest component, so no norm overflows or underflows.

    (A float32 norm of (1e38, 0, 0, 0) is inf and would turn the rotation into zeros.)
    """
    q = quats.double()
    q = q / q.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    return (q / q.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)).to(quats.dtype)


def sh_degree_from_k(k: int) -> int:
    """SH degree for K coefficients per channel; raises unless K is a perfect square."""
    deg = math.isqrt(k) - 1
    if k < 1 or (deg + 1) ** 2 != k:
        raise WorldError(f"sh: K={k} coefficients per channel is not a square (1, 4, 9, 16, ...)")
    return deg


def most_opaque(opacities: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` most opaque Gaussians, most opaque first (ties: lower index first)."""
    return torch.argsort(opacities, descending=True, stable=True)[:count]


def fraction_count(fraction: float, total: int) -> int:
    """``int(fraction * total)``, with ``fraction`` rounded to 12 decimals first (1 - 0.8 is 0.19999999999999996)."""
    return int(round(fraction, 12) * total)


@dataclass(eq=False)
class GaussianWorld:
    """A static set of 3D Gaussians with its coordinate frame and metric scale.

    Arrays may be numpy arrays or tensors; they are stored as torch tensors sharing one dtype
    and device. Quaternions are normalised on construction (they must be non-zero).
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    sh: torch.Tensor
    frame: str = "opencv"
    meters_per_unit: float | None = None
    validate: bool = True
    info: dict = field(default_factory=dict)  # provenance (e.g. depth source); never validated
    observed: torch.Tensor | None = None  # (N,) bool: seen by a camera (True) or invented by completion


    def __post_init__(self) -> None:
        self.means = _as_float_tensor("means", self.means)
        dtype, device = self.means.dtype, self.means.device
        self.quats = _as_float_tensor("quats", self.quats).to(device=device, dtype=dtype)
        self.scales = _as_float_tensor("scales", self.scales).to(device=device, dtype=dtype)
        self.opacities = _as_float_tensor("opacities", self.opacities).to(device=device, dtype=dtype)
        self.sh = _as_float_tensor("sh", self.sh).to(device=device, dtype=dtype)
        if self.frame not in FRAMES:
            raise WorldError(f"frame: expected one of {FRAMES}, got {self.frame!r}")
        if self.meters_per_unit is not None:
            self.meters_per_unit = float(self.meters_per_unit)
            if not (math.isfinite(self.meters_per_unit) and self.meters_per_unit > 0):
                raise WorldError(f"meters_per_unit: expected a positive number, got {self.meters_per_unit}")
        self.observed = _observed_mask(self.observed, self.means)
        if self.validate:
            self._check()
        norms = self.quats.double().norm(dim=-1, keepdim=True)
        if len(norms) and ((norms - 1).abs() > 1e-6).any():  # leave unit quaternions bit-exact
            self.quats = _unit_quaternions(self.quats)

    def _check(self) -> None:
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        expected = {
            "means": (self.means, (n, 3)),
            "quats": (self.quats, (n, 4)),
            "scales": (self.scales, (n, 3)),
            "opacities": (self.opacities, (n,)),
        }
        if self.means.ndim != 2 or self.means.shape[1] != 3:
            raise WorldError(f"means: expected shape (N, 3), got {tuple(self.means.shape)}")
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise WorldError(f"{name}: expected shape {shape}, got {tuple(tensor.shape)}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise WorldError(f"sh: expected shape ({n}, K, 3), got {tuple(self.sh.shape)}")
        sh_degree_from_k(self.sh.shape[1])
        if tuple(self.observed.shape) != (n,):
            raise WorldError(f"observed: expected shape ({n},), got {tuple(self.observed.shape)}")
        for name in ("means", "quats", "scales", "opacities", "sh"):
            tensor = getattr(self, name)
            bad = ~torch.isfinite(tensor)
            if bad.any():
                row = int(bad.reshape(n, -1).any(dim=1).nonzero()[0, 0]) if n else 0
                raise WorldError(f"{name}: {int(bad.sum())} non-finite values (first at Gaussian {row})")
        if (self.scales < 0).any():
            raise WorldError("scales: linear scales must be >= 0")
        if ((self.opacities < 0) | (self.opacities > 1)).any():
            raise WorldError("opacities: activated opacities must lie in [0, 1]")
        if n and (self.quats.abs().amax(dim=-1) == 0).any():
            raise WorldError("quats: zero-length quaternion")

    # ----------------------------------------------------------------- basic properties
    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_k(self.sh.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def rgb(self) -> torch.Tensor:
        """View-independent base colour (N,3) from the DC term, clamped to [0,1]."""
        return sh0_to_rgb(self.sh)

    # The face static and dynamic worlds share: keyframes in time, and where the world came from.
    @property
    def times(self) -> list[float]:
        """Keyframe times: a static world is one keyframe at t = 0."""
        return [0.0]

    @property
    def keyframes(self) -> list[GaussianWorld]:
        return [self]

    def at(self, t: float) -> GaussianWorld:
        """The Gaussians shown at time ``t``: always this world."""
        return self

    def map(self, fn) -> GaussianWorld:
        """``fn`` (GaussianWorld -> GaussianWorld) applied to the one keyframe."""
        return fn(self)

    @property
    def generating_camera(self):
        """The ``Camera`` the world was generated from, in the world's frame, or None (see lyra_sim.provenance)."""
        from lyra_sim.provenance import generating_camera

        return generating_camera(self.info, self.frame)

    @property
    def alignment(self):
        """How the world was put in the simulation frame (``provenance.Alignment``), or None if it never was."""
        from lyra_sim.provenance import Alignment

        return Alignment.from_info(self.info["alignment"]) if "alignment" in self.info else None

    @property
    def depth_source(self) -> str | None:
        """Where the geometry came from: "given", "model", "prior", "rgbd_sequence", ... (None when unrecorded)."""
        source = self.info.get("depth_source", self.info.get("generator"))
        return None if source is None else str(source)

    def _replace(self, validate: bool = False, **arrays) -> GaussianWorld:
        fields = {
            "means": self.means,
            "quats": self.quats,
            "scales": self.scales,
            "opacities": self.opacities,
            "sh": self.sh,
            "frame": self.frame,
            "meters_per_unit": self.meters_per_unit,
            "info": dict(self.info),
            "observed": self.observed,
        }
        fields.update(arrays)
        return GaussianWorld(**fields, validate=validate)

    # ----------------------------------------------------------------- helpers
    @classmethod
    def from_rgb(
        cls,
        means,
        rgb,
        scales,
        opacities,
        quats=None,
        frame: str = "opencv",
        meters_per_unit: float | None = None,
    ) -> GaussianWorld:
        """Degree-0 world from plain RGB colours in [0,1]; identity rotations by default."""
        means = _as_float_tensor("means", means)
        rgb = _as_float_tensor("rgb", rgb).to(means)
        if quats is None:
            quats = torch.zeros(means.shape[0], 4, dtype=means.dtype, device=means.device)
            quats[:, 0] = 1.0
        return cls(means, quats, scales, opacities, rgb_to_sh0(rgb), frame, meters_per_unit)

    def to(self, device=None, dtype: torch.dtype | None = None) -> GaussianWorld:
        """Copy to another device and/or floating dtype."""
        return self._replace(
            **{
                k: getattr(self, k).to(device=device, dtype=dtype)
                for k in ("means", "quats", "scales", "opacities", "sh")
            },
            observed=self.observed.to(device=device),
        )

    def subset(self, index: torch.Tensor | np.ndarray | Sequence[int] | slice) -> GaussianWorld:
        """The Gaussians selected by a boolean mask, an index array or a slice."""
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        elif not isinstance(index, (torch.Tensor, slice)):
            index = torch.as_tensor(index, dtype=torch.long)
        if isinstance(index, torch.Tensor):
            index = index.to(self.device)
            if index.dtype == torch.bool and index.shape != (len(self),):
                raise WorldError(f"subset mask: expected shape ({len(self)},), got {tuple(index.shape)}")
        fields = ("means", "quats", "scales", "opacities", "sh", "observed")
        return self._replace(**{k: getattr(self, k)[index] for k in fields})

    def observed_only(self) -> GaussianWorld:
        """The Gaussians a camera saw, without those invented by completion (``observed`` False)."""
        return self.subset(self.observed)

    def prune(self, keep_fraction: float | None = None, min_opacity: float | None = None) -> GaussianWorld:
        """Keep the most opaque Gaussians: the top ``int(keep_fraction * N)`` and/or those >= min_opacity.

        ``keep_fraction=0.2`` is Lyra's "prune 0.8". Order among kept Gaussians is preserved.
        """
        mask = torch.ones(len(self), dtype=torch.bool, device=self.device)
        if min_opacity is not None:
            mask &= self.opacities >= min_opacity
        if keep_fraction is not None:
            if not 0.0 <= keep_fraction <= 1.0:
                raise WorldError(f"keep_fraction: expected a value in [0, 1], got {keep_fraction}")
            top = most_opaque(self.opacities, fraction_count(keep_fraction, len(self)))
            keep = torch.zeros_like(mask)
            keep[top] = True
            mask &= keep
        return self.subset(mask)

    def most_opaque(self, count: int) -> GaussianWorld:
        """The ``count`` most opaque Gaussians, most opaque first (e.g. a bounded point cloud for a viewer)."""
        return self.subset(most_opaque(self.opacities, count))

    def bounds(self, quantile: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Axis-aligned (min, max) of the centres; with ``quantile`` q, the q and 1-q quantiles."""
        if len(self) == 0:
            raise WorldError("bounds: the world is empty")
        if quantile is None:
            return self.means.min(dim=0).values, self.means.max(dim=0).values
        means = self.means.float()
        return torch.quantile(means, quantile, dim=0), torch.quantile(means, 1 - quantile, dim=0)

    def transformed(
        self,
        rotation=None,
        translation=None,
        scale: float = 1.0,
        frame: str | None = None,
        meters_per_unit: float | None = None,
    ) -> GaussianWorld:
        """Apply x -> scale * R @ x + t. Rotates orientations and scales sizes accordingly.

        ``rotation`` is a proper 3x3 rotation matrix. ``meters_per_unit`` defaults to the old value
        divided by ``scale`` (a metric world stays metric).
        """
        if not (math.isfinite(scale) and scale > 0):
            raise WorldError(f"scale: expected a positive finite number, got {scale}")
        rot = torch.eye(3, dtype=self.means.dtype, device=self.device)
        if rotation is not None:
            rot = _as_float_tensor("rotation", rotation).to(self.means)
            if rot.shape != (3, 3):
                raise WorldError(f"rotation: expected shape (3, 3), got {tuple(rot.shape)}")
            ortho_err = (rot @ rot.T - torch.eye(3, dtype=rot.dtype, device=rot.device)).abs().max()
            if ortho_err > 1e-4 or torch.det(rot) < 0:
                raise WorldError("rotation: not a proper rotation matrix (orthonormal, det +1)")
        trans = torch.zeros(3, dtype=self.means.dtype, device=self.device)
        if translation is not None:
            trans = _as_float_tensor("translation", translation).to(self.means).reshape(3)
        means = scale * self.means @ rot.T + trans
        q_rot = rotmat_to_quat(rot.double()).to(self.quats)
        quats = quat_multiply(q_rot.expand_as(self.quats), self.quats)
        mpu = meters_per_unit
        if mpu is None and self.meters_per_unit is not None:
            mpu = self.meters_per_unit / scale
        sh = self.sh
        if self.sh_degree > 0 and rotation is not None:
            from lyra_sim.sh import rotate_sh

            sh = rotate_sh(self.sh, rot)
        return self._replace(  # validated: a finite translation of 1e39 still gives infinite float32 means
            validate=True,
            means=means,
            quats=quats,
            scales=self.scales * scale,
            sh=sh,
            frame=frame or self.frame,
            meters_per_unit=mpu,
        )

    def with_z_up_axes(self) -> GaussianWorld:
        """The same world with OpenCV axes turned into REP-103 axes (a fixed rotation, no levelling).

        Gravity is right only if the generating camera was level; ``lyra_sim.align`` finds the floor.
        A world already in "z_up" is returned unchanged.
        """
        if self.frame == "z_up":
            return self
        return self.transformed(rotation=OPENCV_TO_Z_UP, frame="z_up")

    @staticmethod
    def concatenate(worlds: Sequence[GaussianWorld]) -> GaussianWorld:
        """Join worlds that share frame and scale; SH degrees are padded to the highest."""
        if not worlds:
            raise WorldError("concatenate: no worlds given")
        frames = {w.frame for w in worlds}
        scales = {w.meters_per_unit for w in worlds}
        if len(frames) > 1 or len(scales) > 1:
            raise WorldError(f"concatenate: worlds differ in frame {frames} or meters_per_unit {scales}")
        k = max(w.sh.shape[1] for w in worlds)
        sh = [torch.nn.functional.pad(w.sh, (0, 0, 0, k - w.sh.shape[1])) for w in worlds]
        first = worlds[0]
        return first._replace(
            means=torch.cat([w.means for w in worlds]),
            quats=torch.cat([w.quats for w in worlds]),
            scales=torch.cat([w.scales for w in worlds]),
            opacities=torch.cat([w.opacities for w in worlds]),
            sh=torch.cat(sh),
            observed=torch.cat([w.observed.to(first.device) for w in worlds]),
        )

    def with_sh_degree(self, degree: int) -> GaussianWorld:
        """Truncate or zero-pad the SH coefficients to ``degree``."""
        k = (degree + 1) ** 2
        cur = self.sh.shape[1]
        sh = self.sh[:, :k] if k <= cur else torch.nn.functional.pad(self.sh, (0, 0, 0, k - cur))
        return self._replace(sh=sh)

    def summary(self) -> dict:
        """Plain-Python facts about the world (for ``lyra-sim info`` and logs)."""
        out = {
            "num_gaussians": len(self),
            "sh_degree": self.sh_degree,
            "frame": self.frame,
            "meters_per_unit": self.meters_per_unit,
            "dtype": str(self.means.dtype).replace("torch.", ""),
            **({"info": self.info} if self.info else {}),
        }
        if not bool(self.observed.all()):
            out["completed_gaussians"] = int((~self.observed).sum())
        if len(self):
            lo, hi = self.bounds()
            out["bounds_min"] = [round(float(v), 4) for v in lo]
            out["bounds_max"] = [round(float(v), 4) for v in hi]
            out["opacity_mean"] = round(float(self.opacities.float().mean()), 4)
            out["scale_median"] = round(float(self.scales.float().median()), 5)
        return out


class DynamicGaussianWorld:
    """A 4D world: keyframe times (strictly increasing) each with its own GaussianWorld.

    ``at(t)`` returns the keyframe nearest in time (ties go to the earlier keyframe), which is
    deterministic and keeps every Gaussian set exactly as decoded (Lyra decodes one set per time).
    """

    def __init__(self, times: Sequence[float] | torch.Tensor | np.ndarray, worlds: Sequence[GaussianWorld]):
        times_list = [float(t) for t in (times.tolist() if hasattr(times, "tolist") else times)]
        worlds = list(worlds)
        if not worlds:
            raise WorldError("worlds: a dynamic world needs at least one keyframe")
        if len(times_list) != len(worlds):
            raise WorldError(f"times: {len(times_list)} times for {len(worlds)} worlds")
        if not all(math.isfinite(t) for t in times_list):
            raise WorldError("times: non-finite keyframe time")
        if any(b <= a for a, b in itertools.pairwise(times_list)):
            raise WorldError(f"times: keyframe times must be strictly increasing, got {times_list}")
        for i, w in enumerate(worlds):
            if not isinstance(w, GaussianWorld):
                raise WorldError(f"worlds[{i}]: expected a GaussianWorld, got {type(w).__name__}")
        frames = {w.frame for w in worlds}
        if len(frames) > 1:
            raise WorldError(f"worlds: keyframes are in different frames {frames}")
        self.times = times_list
        self.worlds = worlds

    def __len__(self) -> int:
        return len(self.worlds)

    @property
    def frame(self) -> str:
        return self.worlds[0].frame

    @property
    def meters_per_unit(self) -> float | None:
        return self.worlds[0].meters_per_unit

    @property
    def keyframes(self) -> list[GaussianWorld]:
        return self.worlds

    @property
    def info(self) -> dict:
        """The first keyframe's ``info``: the provenance (camera, alignment, depth source) the whole world shares."""
        return self.worlds[0].info

    @property
    def generating_camera(self):
        return self.worlds[0].generating_camera

    @property
    def alignment(self):
        return self.worlds[0].alignment

    @property
    def depth_source(self) -> str | None:
        return self.worlds[0].depth_source

    def index_at(self, t: float) -> int:
        """Index of the keyframe used at time ``t`` (nearest; ties to the earlier one)."""
        if not math.isfinite(t):
            raise WorldError(f"t: expected a finite time, got {t}")
        times = np.asarray(self.times)
        return int(np.argmin(np.abs(times - t)))

    def at(self, t: float) -> GaussianWorld:
        """The Gaussian world shown at time ``t``."""
        return self.worlds[self.index_at(t)]

    def map(self, fn) -> DynamicGaussianWorld:
        """Apply ``fn`` (GaussianWorld -> GaussianWorld) to every keyframe."""
        return DynamicGaussianWorld(self.times, [fn(w) for w in self.worlds])

    def to(self, device=None, dtype: torch.dtype | None = None) -> DynamicGaussianWorld:
        return self.map(lambda w: w.to(device, dtype))

    def transformed(self, rotation=None, translation=None, scale: float = 1.0, **kwargs) -> DynamicGaussianWorld:
        return self.map(lambda w: w.transformed(rotation, translation, scale, **kwargs))

    def with_z_up_axes(self) -> DynamicGaussianWorld:
        return self.map(GaussianWorld.with_z_up_axes)

    def summary(self) -> dict:
        return {
            "keyframes": len(self),
            "times": self.times,
            "num_gaussians": [len(w) for w in self.worlds],
            **{k: v for k, v in self.worlds[0].summary().items() if k not in ("num_gaussians",)},
        }


def first_keyframe(world: GaussianWorld | DynamicGaussianWorld) -> GaussianWorld:
    """The world itself, or a dynamic world's first keyframe: the one that carries the generating camera,
    the frame and the alignment report the whole world shares."""
    return world.worlds[0] if isinstance(world, DynamicGaussianWorld) else world
