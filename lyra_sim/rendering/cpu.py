"""The CPU rendering backend: numba tile rasterizer, differentiable through a custom autograd op.

Pipeline per camera: project every Gaussian (numba) -> keep the visible ones, radix-sort them
front to back -> gather their packed rows -> bin them into 16x16 tiles -> composite each tile.
Without gradients everything stays in numba. With gradients, the visible Gaussians' 2D means,
conics, colours and depths are recomputed in torch (lyra_sim.rendering.projection) so autograd
reaches the world's tensors, and the raster step's backward pass is the numba kernel.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from lyra_sim.camera import Camera
from lyra_sim.rendering import cpu_kernels as kernels
from lyra_sim.rendering.projection import project_ewa
from lyra_sim.sh import eval_sh_colors
from lyra_sim.world import GaussianWorld

TILE_SIZE = 16
_workspace = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A reusable per-thread buffer: fresh multi-megabyte arrays cost page faults on every frame."""
    buf = getattr(_workspace, name, None)
    size = int(np.prod(shape))
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(max(size, 1), dtype)
        setattr(_workspace, name, buf)
    return buf[:size].reshape(shape)


def _np(t: torch.Tensor, dtype=np.float32) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype)


class _Tiles:
    """Tile lists and image geometry shared by the forward and backward raster passes."""

    def __init__(self, packed: np.ndarray, width: int, height: int):
        self.width, self.height = width, height
        self.tiles_x = (width + TILE_SIZE - 1) // TILE_SIZE
        tiles_y = (height + TILE_SIZE - 1) // TILE_SIZE
        self.offsets, self.lists = kernels.bin_tiles(packed, TILE_SIZE, self.tiles_x, tiles_y)

    def forward(self, packed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = np.zeros((self.height, self.width, kernels.FEATURES), dtype=packed.dtype)
        t_final = np.ones((self.height, self.width), dtype=packed.dtype)
        last = np.zeros((self.height, self.width), dtype=np.int64)
        kernels.raster_forward(
            packed,
            self.offsets,
            self.lists,
            self.width,
            self.height,
            TILE_SIZE,
            self.tiles_x,
            out,
            t_final,
            last,
        )
        return out, t_final, last


def _pack(mean2d, conic, features, opacities, radii) -> np.ndarray:
    """Packed rows (see cpu_kernels column constants) from separate tensors."""
    cols = [mean2d, conic, opacities.unsqueeze(-1), features, radii.to(features)]
    return _np(torch.cat([c.detach().to(features.dtype) for c in cols], dim=-1), dtype=None)


class _RasterizeFunction(torch.autograd.Function):
    """(mean2d, conic, features, opacities) of sorted Gaussians -> (accumulated features, alpha)."""

    @staticmethod
    def forward(ctx, mean2d, conic, features, opacities, radii, width, height):
        packed = _pack(mean2d, conic, features, opacities, radii)
        tiles = _Tiles(packed, width, height)
        out, t_final, last = tiles.forward(packed)
        ctx.tiles, ctx.packed, ctx.t_final, ctx.last = tiles, packed, t_final, last
        return torch.from_numpy(out), torch.from_numpy(1.0 - t_final)

    @staticmethod
    def backward(ctx, v_out, v_alpha):
        tiles, packed = ctx.tiles, ctx.packed
        dtype = packed.dtype
        slots = tiles.lists.shape[0]
        v_mean2d = np.zeros((slots, 2), dtype)
        v_conic = np.zeros((slots, 3), dtype)
        v_features = np.zeros((slots, kernels.FEATURES), dtype)
        v_opac = np.zeros(slots, dtype)
        kernels.raster_backward(
            packed, tiles.offsets, tiles.lists, tiles.width, tiles.height, TILE_SIZE, tiles.tiles_x,
            ctx.t_final, ctx.last, _np(v_out, dtype), _np(v_alpha, dtype), v_mean2d, v_conic, v_features, v_opac,
        )
        index = torch.from_numpy(tiles.lists.astype(np.int64))
        count = packed.shape[0]

        def per_gaussian(slot_grads: np.ndarray) -> torch.Tensor:
            grads = torch.from_numpy(slot_grads)
            return torch.zeros((count, *grads.shape[1:]), dtype=grads.dtype).index_add_(0, index, grads)

        return (
            per_gaussian(v_mean2d),
            per_gaussian(v_conic),
            per_gaussian(v_features),
            per_gaussian(v_opac),
            None,
            None,
            None,
        )


def _needs_grad(world: GaussianWorld) -> bool:
    return torch.is_grad_enabled() and any(
        t.requires_grad for t in (world.means, world.quats, world.scales, world.opacities, world.sh)
    )


def render_cpu_single(
    world: GaussianWorld, camera: Camera, near: float, far: float, eps2d: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render one camera: accumulated RGB (H,W,3) without background, expected depth, alpha."""
    w, h = camera.width, camera.height
    K, w2c = camera.K[0].double(), camera.world_to_cam[0].double()
    cam_pos = camera.position[0].double()
    n = len(world)
    packed = _scratch("packed", (n, kernels.PACKED_WIDTH), np.float32)
    depth = _scratch("depth", (n,), np.float32)
    kernels.project_gaussians(
        _np(world.means), _np(world.quats), _np(world.scales), _np(world.opacities), _np(world.sh),
        w2c.numpy(), cam_pos.numpy(), float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]),
        w, h, eps2d, near, far, packed, depth,
    )
    visible = np.flatnonzero(packed[:, kernels.RX] > 0)
    order = visible[kernels.depth_order(depth[visible])]  # front to back, ties by index
    sorted_rows = kernels.gather_rows(packed, order.astype(np.int32))
    radii = torch.from_numpy(sorted_rows[:, kernels.RX :])
    if _needs_grad(world):
        idx = torch.from_numpy(order.astype(np.int64)).to(world.device)
        means = world.means[idx]
        mean2d, conic, depth_t = project_ewa(means, world.quats[idx], world.scales[idx], w2c.float(), K, w, h, eps2d)
        colors = eval_sh_colors(world.sh[idx], means - cam_pos.to(means))
        features = torch.cat([colors, depth_t.unsqueeze(-1)], dim=-1)
        opacities = world.opacities[idx]
        out, alpha = _RasterizeFunction.apply(mean2d, conic, features, opacities, radii, w, h)
    else:
        tiles = _Tiles(sorted_rows, w, h)
        out_np, t_final, _ = tiles.forward(sorted_rows)
        out, alpha = torch.from_numpy(out_np), torch.from_numpy(1.0 - t_final)
    out, alpha = out.to(world.means.dtype), alpha.to(world.means.dtype)
    expected_depth = out[..., 3] / alpha.clamp_min(1e-10)
    return out[..., :3], expected_depth, alpha
