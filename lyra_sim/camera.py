"""OpenCV pinhole cameras (x right, y down, z forward), single or batched, and camera paths."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from lyra_sim.defaults import DEFAULT_FOV_DEG
from lyra_sim.errors import LyraSimError

#: Horizontal field of view assumed when a camera's is unknown (degrees; a typical phone camera).


class CameraError(LyraSimError):
    """Camera parameters are malformed (shape, non-finite values, bad intrinsics or pose)."""


def _tensor(name: str, value, shape_tail: tuple[int, ...]) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    value = torch.as_tensor(value, dtype=torch.float32) if not isinstance(value, torch.Tensor) else value.float()
    if value.shape[-len(shape_tail) :] != shape_tail or value.ndim not in (
        len(shape_tail),
        len(shape_tail) + 1,
    ):
        raise CameraError(
            f"{name}: expected shape {shape_tail} or (B, {', '.join(map(str, shape_tail))}), got {tuple(value.shape)}"
        )
    if not torch.isfinite(value).all():
        raise CameraError(f"{name}: contains NaN or inf")
    return value


class Camera:
    """One pinhole camera or a batch of B cameras sharing width and height.

    ``K`` is (3,3) or (B,3,3); ``world_to_cam`` is (4,4) or (B,4,4) (OpenCV convention).
    Internally both are kept batched; ``len(camera)`` is B and ``camera[i]`` is one camera.
    ``batched`` records whether the caller gave a batch (render results then keep the B axis).
    """

    def __init__(self, K, world_to_cam, width: int, height: int):
        K = _tensor("K", K, (3, 3))
        w2c = _tensor("world_to_cam", world_to_cam, (4, 4))
        self.batched = K.ndim == 3 or w2c.ndim == 3
        if K.ndim == 2:
            K = K.unsqueeze(0)
        if w2c.ndim == 2:
            w2c = w2c.unsqueeze(0)
        if K.shape[0] != w2c.shape[0]:
            if K.shape[0] == 1:
                K = K.expand(w2c.shape[0], 3, 3)
            elif w2c.shape[0] == 1:
                w2c = w2c.expand(K.shape[0], 4, 4)
            else:
                raise CameraError(f"K has batch {K.shape[0]} but world_to_cam has batch {w2c.shape[0]}")
        if int(width) != width or int(height) != height or width < 1 or height < 1:
            raise CameraError(f"width/height: expected positive integers, got {width}x{height}")
        if (K[:, 0, 0] <= 0).any() or (K[:, 1, 1] <= 0).any():
            raise CameraError("K: focal lengths fx, fy must be positive")
        rot = w2c[:, :3, :3]
        eye = torch.eye(3).expand_as(rot)
        if (rot @ rot.transpose(1, 2) - eye).abs().max() > 1e-3 or (
            w2c[:, 3] - torch.tensor([0, 0, 0, 1.0])
        ).abs().max() > 1e-6:
            raise CameraError("world_to_cam: not a rigid transform (orthonormal rotation, last row 0 0 0 1)")
        self.K = K.contiguous()
        self.world_to_cam = w2c.contiguous()
        self.width = int(width)
        self.height = int(height)

    # ---------------------------------------------------------------- constructors
    @staticmethod
    def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> torch.Tensor:
        """K for a horizontal field of view, fx = fy, principal point at the image centre."""
        if not 0 < fov_deg < 180:
            raise CameraError(f"fov_deg: expected a value in (0, 180), got {fov_deg}")
        f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
        return torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float32)

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float, world_to_cam=None) -> Camera:
        """Camera with a horizontal field of view; identity pose when ``world_to_cam`` is None."""
        w2c = torch.eye(4) if world_to_cam is None else world_to_cam
        return cls(cls.intrinsics_from_fov(width, height, fov_deg), w2c, width, height)

    @classmethod
    def look_at(
        cls,
        eye,
        target,
        up=(0.0, -1.0, 0.0),
        width: int = 640,
        height: int = 480,
        fov_deg: float = DEFAULT_FOV_DEG,
        K=None,
    ) -> Camera:
        """Camera at ``eye`` looking at ``target``; ``up`` is the world's up direction.

        The default up (0,-1,0) suits worlds in the "opencv" frame; pass (0,0,1) for "z_up".
        ``eye`` and ``target`` may be (3,) or (B,3) for a batch.
        """
        w2c = look_at_matrix(eye, target, up)
        K = cls.intrinsics_from_fov(width, height, fov_deg) if K is None else K
        return cls(K, w2c, width, height)

    @classmethod
    def stack(cls, cameras: Sequence[Camera]) -> Camera:
        """Concatenate cameras of the same image size into one batch."""
        if not cameras:
            raise CameraError("stack: no cameras given")
        sizes = {(c.width, c.height) for c in cameras}
        if len(sizes) != 1:
            raise CameraError(f"stack: cameras differ in image size {sorted(sizes)}")
        w, h = sizes.pop()
        return cls(torch.cat([c.K for c in cameras]), torch.cat([c.world_to_cam for c in cameras]), w, h)

    # ---------------------------------------------------------------- accessors
    def __len__(self) -> int:
        return self.K.shape[0]

    def __getitem__(self, index) -> Camera:
        """``camera[i]`` is one (unbatched) camera; a slice or index array gives a batch."""
        return Camera(self.K[index], self.world_to_cam[index], self.width, self.height)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"Camera(batch={len(self)}, {self.width}x{self.height}, fx={float(self.K[0, 0, 0]):.1f})"

    @property
    def cam_to_world(self) -> torch.Tensor:
        """(B,4,4) camera-to-world transforms."""
        return torch.linalg.inv(self.world_to_cam)

    @property
    def position(self) -> torch.Tensor:
        """(B,3) camera centres in world coordinates."""
        rot, t = self.world_to_cam[:, :3, :3], self.world_to_cam[:, :3, 3]
        return -(rot.transpose(1, 2) @ t.unsqueeze(-1)).squeeze(-1)

    def resized(self, width: int, height: int) -> Camera:
        """Same cameras at another resolution (intrinsics scaled per axis)."""
        return Camera(scale_intrinsics(self.K, width / self.width, height / self.height), self.world_to_cam,
                      width, height)

    def relative_to_first(self) -> Camera:
        """Poses expressed in the first camera's frame (Lyra: ``inv(c2w_0) @ c2w``); see ``relative_poses``."""
        return Camera(self.K, torch.linalg.inv(relative_poses(self.cam_to_world)), self.width, self.height)

    def rays(self, downsample: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """World-space ray origins and unit directions (B,H',W',3) through pixel centres (+0.5)."""
        K = self.K.clone()
        K[:, :2] /= downsample
        return pixel_rays(K, self.cam_to_world, self.height // downsample, self.width // downsample)


def relative_poses(cam_to_world: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """``inv(reference) @ c2w`` for every pose (..., 4, 4): the cameras in the reference camera's frame.

    The reference defaults to the first pose (of the flattened batch), Lyra's convention for decoder inputs.
    """
    reference = cam_to_world.reshape(-1, 4, 4)[0] if reference is None else reference
    return torch.linalg.solve(reference.to(cam_to_world), cam_to_world)


def pixel_directions(K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Camera-frame ray directions (x, y, 1) through pixel centres (+0.5) of an OpenCV pinhole.

    K (..., 3, 3) -> (..., height, width, 3) in K's dtype and device; scaled by a z-depth they are points.
    """
    v, u = torch.meshgrid(torch.arange(height, dtype=K.dtype, device=K.device) + 0.5,
                          torch.arange(width, dtype=K.dtype, device=K.device) + 0.5, indexing="ij")
    x = (u - K[..., 0, 2, None, None]) / K[..., 0, 0, None, None]
    y = (v - K[..., 1, 2, None, None]) / K[..., 1, 1, None, None]
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def pixel_rays(K: torch.Tensor, cam_to_world: torch.Tensor, height: int,
               width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space ray origins and unit directions through pixel centres (+0.5), OpenCV pinhole.

    K (N, 3, 3) and cam_to_world (N, 4, 4), any dtype/device -> origins and directions (N, height, width, 3).
    """
    camera_dirs = pixel_directions(K.to(cam_to_world), height, width)  # (N, H, W, 3)
    directions = torch.einsum("nij,nhwj->nhwi", cam_to_world[:, :3, :3], camera_dirs)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origins = cam_to_world[:, None, None, :3, 3].expand_as(directions)
    return origins, directions


def scale_intrinsics(K, scale_x: float, scale_y: float):
    """K (..., 3, 3), numpy or torch, for an image resized by (scale_x, scale_y): the pixel-corner convention of
    the package's K (centres at +0.5) makes it cx' = cx * scale_x, fx' = fx * scale_x (and the same in y)."""
    if isinstance(K, torch.Tensor):
        return torch.tensor([[scale_x, 0, 0], [0, scale_y, 0], [0, 0, 1]], dtype=K.dtype, device=K.device) @ K
    return np.diag([scale_x, scale_y, 1.0]) @ np.asarray(K, dtype=np.float64)


def look_at_matrix(eye, target, up=(0.0, -1.0, 0.0)) -> torch.Tensor:
    """OpenCV world-to-camera (B,4,4) or (4,4) looking from ``eye`` to ``target``."""
    eye_t = torch.as_tensor(np.array(eye, dtype=np.float64))
    target_t = torch.as_tensor(np.array(target, dtype=np.float64))
    single = eye_t.ndim == 1 and target_t.ndim == 1
    eye_t, target_t = torch.broadcast_tensors(eye_t.reshape(-1, 3), target_t.reshape(-1, 3))
    up_t = torch.as_tensor(np.array(up, dtype=np.float64)).reshape(1, 3).expand_as(eye_t)
    forward = target_t - eye_t
    if (forward.norm(dim=-1) < 1e-12).any():
        raise CameraError("look_at: eye and target coincide")
    forward = forward / forward.norm(dim=-1, keepdim=True)
    down = -(up_t - (up_t * forward).sum(-1, keepdim=True) * forward)
    if (down.norm(dim=-1) < 1e-9).any():
        raise CameraError("look_at: viewing direction is parallel to the up vector")
    down = down / down.norm(dim=-1, keepdim=True)
    right = torch.cross(down, forward, dim=-1)
    rot = torch.stack([right, down, forward], dim=1)  # rows: camera axes in world coordinates
    w2c = torch.eye(4, dtype=torch.float64).repeat(eye_t.shape[0], 1, 1)
    w2c[:, :3, :3] = rot
    w2c[:, :3, 3] = -(rot @ eye_t.unsqueeze(-1)).squeeze(-1)
    w2c = w2c.float()
    return w2c[0] if single else w2c
