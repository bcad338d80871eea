"""Split a depth image into surface layers at depth discontinuities (a layered depth image).

Two neighbouring pixels lie on different surfaces when the step of inverse depth between them is
not explained by the surface on either side: inverse depth is affine along any plane, so on a
plane (however grazing) the step equals its neighbouring steps, while at an occlusion edge it is
far larger than both. Each side of such a jump keeps its pixel; normals and gradients are taken
within a layer only, so no Gaussian is stretched across a jump ("rubber sheet").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DepthLayers:
    """Jumps between horizontal (``jump_u[v, u]``: u|u+1) and vertical (``jump_v[v, u]``: v|v+1) neighbours."""

    inv_depth: np.ndarray  # (H, W)
    jump_u: np.ndarray  # (H, W-1) bool
    jump_v: np.ndarray  # (H-1, W) bool

    @property
    def near_edge(self) -> np.ndarray:
        """Pixels on the near (foreground) side of a jump."""
        return self._side(near=True)

    @property
    def far_edge(self) -> np.ndarray:
        """Pixels on the far (background) side of a jump."""
        return self._side(near=False)

    @property
    def any_edge(self) -> np.ndarray:
        return self.near_edge | self.far_edge

    def _side(self, near: bool) -> np.ndarray:
        inv = self.inv_depth
        out = np.zeros(inv.shape, bool)
        right_nearer = inv[:, 1:] > inv[:, :-1]
        down_nearer = inv[1:, :] > inv[:-1, :]
        out[:, 1:] |= self.jump_u & (right_nearer == near)
        out[:, :-1] |= self.jump_u & (right_nearer != near)
        out[1:, :] |= self.jump_v & (down_nearer == near)
        out[:-1, :] |= self.jump_v & (down_nearer != near)
        return out

    def background_inv_depth(self) -> np.ndarray:
        """For near-edge pixels: the inverse depth of the farthest neighbour across a jump (else 0)."""
        inv = self.inv_depth
        out = np.full(inv.shape, np.inf, np.float32)
        for jumps, a, b in ((self.jump_u, np.s_[:, :-1], np.s_[:, 1:]), (self.jump_v, np.s_[:-1, :], np.s_[1:, :])):
            lo = np.minimum(inv[a], inv[b])
            fill = np.where(jumps, lo, np.inf)
            out[a] = np.minimum(out[a], np.where(inv[a] > inv[b], fill, np.inf))
            out[b] = np.minimum(out[b], np.where(inv[b] > inv[a], fill, np.inf))
        return np.where(np.isfinite(out), out, 0.0)

    def gradients(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel derivative of ``values`` (H,W[,C]) along u and v taken within the pixel's layer.

        Central differences where both neighbours are on the same layer, one-sided where one is not,
        zero where neither is (an isolated pixel).
        """
        return (_layer_derivative(values, self.jump_u, axis=1), _layer_derivative(values, self.jump_v, axis=0))


def _layer_derivative(values: np.ndarray, jumps: np.ndarray, axis: int) -> np.ndarray:
    values = np.moveaxis(values, axis, 0)
    jumps = np.moveaxis(jumps, axis, 0)
    n = values.shape[0]
    step = values[1:] - values[:-1]  # step i: between i and i+1
    ok = ~jumps
    if values.ndim > jumps.ndim:
        ok = ok[..., None]
    fwd = np.zeros_like(values)
    bwd = np.zeros_like(values)
    has_fwd = np.zeros(values.shape, bool)
    has_bwd = np.zeros(values.shape, bool)
    fwd[: n - 1] = np.where(ok, step, 0)
    has_fwd[: n - 1] = np.broadcast_to(ok, step.shape)
    bwd[1:] = np.where(ok, step, 0)
    has_bwd[1:] = np.broadcast_to(ok, step.shape)
    count = has_fwd.astype(values.dtype) + has_bwd
    out = (fwd + bwd) / np.maximum(count, 1)
    return np.moveaxis(out, 0, axis)


def _jumps_along(inv: np.ndarray, rel_jump: float, axis: int) -> np.ndarray:
    inv = np.moveaxis(inv, axis, 0)
    step = inv[1:] - inv[:-1]  # (n-1, ...)
    prev = np.concatenate([step[:1], step[:-1]])  # step before (repeated at the border)
    nxt = np.concatenate([step[1:], step[-1:]])
    closest = np.where(np.abs(prev - step) < np.abs(nxt - step), prev, nxt)
    scale = np.maximum(inv[1:], inv[:-1])
    jumps = (np.abs(step - closest) > rel_jump * scale) & (np.abs(step) > rel_jump * scale)
    return np.moveaxis(jumps, 0, axis)


def split_layers(depth: np.ndarray, rel_jump: float = 0.04) -> DepthLayers:
    """Find the depth jumps of a filled depth map (H,W), all positive.

    ``rel_jump``: a step of inverse depth that departs from the planar prediction by more than this
    fraction of the inverse depth (about a 4 % depth jump) separates two surfaces.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if (depth <= 0).any() or not np.isfinite(depth).all():
        raise ValueError("split_layers: depth must be positive and finite everywhere (fill it first)")
    inv = 1.0 / depth
    h, w = depth.shape
    jump_u = _jumps_along(inv, rel_jump, axis=1) if w > 1 else np.zeros((h, 0), bool)
    jump_v = _jumps_along(inv, rel_jump, axis=0) if h > 1 else np.zeros((0, w), bool)
    return DepthLayers(inv, jump_u, jump_v)


def layer_normals(points: np.ndarray, layers: DepthLayers) -> np.ndarray:
    """Unit normals (H,W,3) facing the camera, from derivatives of the point map within each layer."""
    du, dv = layers.gradients(points)
    n = np.cross(du, dv)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    facing_camera = -points / np.linalg.norm(points, axis=-1, keepdims=True)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), facing_camera)  # isolated pixel: face the camera
    flip = (n * points).sum(-1, keepdims=True) > 0
    return np.where(flip, -n, n)


@dataclass(frozen=True)
class ViewGeometry:
    """A depth map's camera-frame points (H,W,3), layers and per-layer normals (H,W,3), computed once per view."""

    points: np.ndarray
    layers: DepthLayers
    normals: np.ndarray

    @classmethod
    def of(cls, depth: np.ndarray, K: np.ndarray) -> ViewGeometry:
        from lyra_sim.single_view.surfels import unproject_depth

        points = unproject_depth(depth, K)
        layers = split_layers(depth)
        return cls(points, layers, layer_normals(points, layers))
