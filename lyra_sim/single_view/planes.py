"""Big planes of a lifted scene: the floor (lyra_sim.align's RANSAC) and walls (open3d RANSAC), and the
colour of their unseen parts synthesised from the seen texture.

Everything is in the input camera's OpenCV frame; ``FloorFrame`` maps it to floor coordinates
(x forward, y left, z up, the camera's foot at the origin, floor at z = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lyra_sim.align import find_floor, floor_rotation
from lyra_sim.single_view.periodic_texture import find_lattice
from lyra_sim.single_view.quilting import quilt
from lyra_sim.world import GaussianWorld

TEXTURE_SYNTHESES = ("periodic", "quilt", "mirror")
QUILT_SIZE = 3  # the quilted tile's side, in sample patches
QUILT_BLOCK_DIVISOR = 3  # quilting blocks are a third of the sample patch's side
BORDER_BAND = 0.5  # beyond the seen grid, its reflection continues this share of its larger side (then the tile)


@dataclass(frozen=True)
class FloorFrame:
    """q = R p + (0, 0, height): camera frame -> floor frame (z = height above the floor)."""

    rotation: np.ndarray  # (3, 3), rows x, y, z (z: the floor normal, towards the camera)
    height: float  # camera height above the floor, in world units (the plane's offset)
    inlier_fraction: float  # of the points RANSAC saw

    def to_floor(self, points: np.ndarray) -> np.ndarray:
        return points @ self.rotation.T + np.array([0.0, 0.0, self.height])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return (points - np.array([0.0, 0.0, self.height])) @ self.rotation

    def direction_to_camera(self, directions: np.ndarray) -> np.ndarray:
        return directions @ self.rotation


@dataclass(frozen=True)
class Wall:
    """A vertical plane in floor coordinates: normal . q + offset = 0, the normal pointing to the camera."""

    normal: np.ndarray  # (3,) horizontal unit vector
    offset: float
    top: float  # highest seen point (floor frame z)
    inliers: np.ndarray  # (M,) indices into the points it was fitted to

    def signed_distance(self, q: np.ndarray) -> np.ndarray:
        return q @ self.normal + self.offset

    def along(self) -> np.ndarray:
        """The horizontal unit vector in the wall (with +z it spans the wall)."""
        along = np.cross([0.0, 0.0, 1.0], self.normal)
        return along / np.linalg.norm(along)


def find_floor_frame(world: GaussianWorld) -> FloorFrame:
    """The floor under the input camera of an "opencv" world (lyra_sim.align; WorldError when there is none)."""
    plane = find_floor(world)
    return FloorFrame(floor_rotation(plane.normal, np.array([0.0, 0.0, 1.0])), float(plane.offset),
                      float(plane.inlier_fraction))


def find_walls(points: np.ndarray, threshold: float, min_fraction: float = 0.04, max_walls: int = 4,
               max_tilt_deg: float = 10.0, min_width: float = 0.0, seed: int = 0) -> list[Wall]:
    """Near-vertical planes among floor-frame ``points`` (floor excluded by the caller) by open3d RANSAC.

    Planes are peeled off one at a time; one counts as a wall when its normal is within ``max_tilt_deg``
    of horizontal, it holds ``min_fraction`` of the points and spans ``min_width`` along itself.
    """
    import open3d as o3d  # here, not at the top: `import lyra_sim` must not load open3d

    if len(points) < 100:
        return []
    o3d.utility.random.seed(seed)
    remaining = np.arange(len(points))
    walls: list[Wall] = []
    sin_tilt = np.sin(np.radians(max_tilt_deg))
    for _ in range(2 * max_walls):
        if len(walls) >= max_walls or len(remaining) < min_fraction * len(points):
            break
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[remaining]))
        model, inliers = cloud.segment_plane(threshold, 3, 200)
        inliers = np.asarray(inliers)
        if len(inliers) < min_fraction * len(points):
            break
        normal, offset = np.asarray(model[:3], np.float64), float(model[3])
        scale = np.linalg.norm(normal)
        normal, offset = normal / scale, offset / scale
        chosen = remaining[inliers]
        remaining = np.delete(remaining, inliers)
        if abs(normal[2]) > sin_tilt:
            continue  # a table top or a slope: not a wall
        normal[2] = 0.0
        norm = np.linalg.norm(normal)
        normal /= norm
        offset /= norm
        camera = np.zeros(3)  # the camera's foot; the camera itself is above it
        if normal @ camera + offset < 0:
            normal, offset = -normal, -offset
        wall = Wall(normal, offset, float(points[chosen, 2].max()), chosen)
        spread = points[chosen] @ wall.along()
        if np.percentile(spread, 98) - np.percentile(spread, 2) < min_width:
            continue
        walls.append(wall)
    return walls


class PlaneTexture:
    """Colour of a plane at 2D coordinates, synthesised from the seen part of it.

    Seen colours are binned on a grid of ``cell``. With ``synthesis="periodic"`` (default) a seen texture
    with a 2D lattice (tiles, a checker: ``periodic_texture.find_lattice``) continues in phase at every unseen
    point, under objects and beyond the image. Otherwise (and with ``"quilt"`` or ``"mirror"``), inside the
    seen region's bounding box unseen cells are inpainted (OpenCV Telea) from the seen ones; outside it, the
    grid itself is reflected across its nearest edge (what the camera saw next to where the seen part ends, e.g.
    at the image border, continues without a seam) for ``BORDER_BAND`` of its size, then fades into a texture
    tiled with mirror reflections from the largest fully seen square patch: a tile QUILT_SIZE times the patch
    quilted from it (``quilting.quilt``: the texture continues across the patch's edges, repeating only every
    two tiles). With ``"mirror"`` (the old behaviour, kept for before/after benchmarks) the patch itself is
    mirror-tiled right from the grid's edge; with ``reflect_border=False`` the tile starts at the grid's edge.
    Too little seen texture for a patch fades into its mean colour.
    """

    def __init__(self, coords: np.ndarray, colors: np.ndarray, cell: float, max_cells: int = 512,
                 synthesis: str = "periodic", reflect_border: bool = True):
        import cv2  # here, not at the top: `import lyra_sim` must not load cv2

        lo, hi = coords.min(axis=0), coords.max(axis=0)
        cell = max(cell, float((hi - lo).max()) / max_cells, 1e-9)
        shape = tuple(np.floor((hi - lo) / cell).astype(int) + 1)
        idx = np.floor((coords - lo) / cell).astype(int)
        flat = idx[:, 0] * shape[1] + idx[:, 1]
        counts = np.bincount(flat, minlength=shape[0] * shape[1])
        sums = np.stack([np.bincount(flat, colors[:, c], shape[0] * shape[1]) for c in range(3)], axis=-1)
        seen = (counts > 0).reshape(shape)
        grid = (sums / np.maximum(counts, 1)[:, None]).reshape(*shape, 3)
        self.lo, self.cell, self.mean = lo, cell, colors.mean(axis=0)
        if synthesis not in TEXTURE_SYNTHESES:
            raise ValueError(f"synthesis: expected one of {TEXTURE_SYNTHESES}, got {synthesis!r}")
        self.synthesis, self.reflect_border = synthesis, reflect_border
        self.tile = None
        # A periodic texture (tiles, a checker) continues in phase everywhere it was not seen.
        self.lattice = find_lattice(grid, seen) if synthesis == "periodic" else None
        if self.lattice is not None:
            grid[~seen] = self.lattice.colors_at(np.argwhere(~seen).astype(np.float64))
            self.grid = np.clip(grid, 0.0, 1.0).astype(np.float32)
            return
        image = np.clip(grid * 255, 0, 255).astype(np.uint8)
        if (~seen).any():
            image = cv2.inpaint(image, (~seen).astype(np.uint8), 3, cv2.INPAINT_TELEA)
        self.grid = image.astype(np.float32) / 255.0
        inside = np.pad(seen, 1)
        distance = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_C, 3)[1:-1, 1:-1]
        centre = np.unravel_index(int(np.argmax(distance)), distance.shape)
        half = int(min(distance[centre] - 1, 48))
        if half >= 3:
            self.tile = self.grid[centre[0] - half : centre[0] + half + 1, centre[1] - half : centre[1] + half + 1]
            if synthesis != "mirror":
                side = len(self.tile)
                block = max(3, side // QUILT_BLOCK_DIVISOR)
                tile = quilt(self.tile, (QUILT_SIZE * side,) * 2, block, max(1, block // 4), np.random.default_rng(0))
                # Greedy overlap matching drifts towards the sample's easiest-to-continue parts (a shading
                # gradient across the patch ends up at one extreme): keep the patch's mean colour.
                self.tile = np.clip(tile + (self.tile.mean(axis=(0, 1)) - tile.mean(axis=(0, 1))), 0.0, 1.0)
                if synthesis == "periodic" and (~seen).any():
                    self._texture_holes(~seen, sigma=float(block))

    def _texture_holes(self, holes: np.ndarray, sigma: float) -> None:
        """Unseen cells inside the grid: the inpainting (the local mean colour, shading) plus the quilted
        texture's detail there (its high frequencies, where Telea alone leaves a smooth blur). The tile is
        mirror-tiled, so its low-pass is the tile's own with reflected borders (scipy's "reflect")."""
        from scipy import ndimage

        detail = self.tile - ndimage.gaussian_filter(self.tile, (sigma, sigma, 0), mode="reflect")
        self.grid[holes] = np.clip(self.grid[holes] + self._tiled(np.argwhere(holes), detail), 0.0, 1.0)

    def _tiled(self, idx: np.ndarray, tile: np.ndarray | None = None) -> np.ndarray:
        """The mirror-tiled texture tile (or another ``tile`` of its shape) at grid indices (M, 2)."""
        tile = self.tile if tile is None else tile
        size = np.array(tile.shape[:2])
        wrapped = np.mod(idx, 2 * size)
        mirrored = np.where(wrapped >= size, 2 * size - 1 - wrapped, wrapped)
        return tile[mirrored[:, 0], mirrored[:, 1]]

    @property
    def method(self) -> str:
        if self.lattice is not None:
            periods = ", ".join(f"{np.linalg.norm(v) * self.cell:.3g}" for v in self.lattice.basis)
            return f"seen texture continued periodically (lattice periods {periods} units)"
        if self.tile is None:
            return "mean seen colour"
        tiling = "mirror-tiled" if self.synthesis == "mirror" else "quilted (Efros-Freeman) and mirror-tiled"
        return f"seen texture inpainted (Telea) and {tiling}"

    def colors_at(self, coords: np.ndarray) -> np.ndarray:
        """RGB (M,3) in [0,1] at plane coordinates (M,2)."""
        idx = np.floor((coords - self.lo) / self.cell).astype(int)
        shape = np.array(self.grid.shape[:2])
        inside = (idx >= 0).all(axis=1) & (idx < shape).all(axis=1)
        out = np.empty((len(coords), 3), np.float32)
        out[inside] = self.grid[idx[inside, 0], idx[inside, 1]]
        outside = ~inside
        if self.lattice is not None:
            out[outside] = self.lattice.colors_at(idx[outside].astype(np.float64))
        elif self.synthesis == "mirror" or not self.reflect_border:
            out[outside] = self.mean if self.tile is None else self._tiled(idx[outside])
        else:
            out[outside] = self._beyond(idx[outside], shape)
        return out

    def _beyond(self, idx: np.ndarray, shape: np.ndarray) -> np.ndarray:
        """Colours (M,3) at grid indices (M,2) outside the grid: the grid reflected across its nearest edges (what
        the camera saw next to where the seen part ends continues, without a seam at the edge) out to
        ``BORDER_BAND`` of the grid's larger side, then fading over as far again into the synthesised tile (or
        the mean colour): far out, a texture rather than a mirror image of the seen scene."""
        mirrored = self._tiled(idx, self.grid)
        beyond = np.maximum(np.maximum(-idx, idx - (shape - 1)), 0).max(axis=1) / float(shape.max())
        far = np.broadcast_to(self.mean, mirrored.shape) if self.tile is None else self._tiled(idx)
        fade = np.clip(beyond / BORDER_BAND - 1.0, 0.0, 1.0)[:, None]
        return (1.0 - fade) * mirrored + fade * far


def graded_grid(inner: float, radius: float, per_side: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Points (M,2) and their spacing (M,) covering the disk of ``radius`` around the origin: a square of
    half-size ``inner`` at spacing 2*inner/per_side, then square rings, each twice as large and as coarse."""
    points, spacing = [], []
    half, step = inner, 2.0 * inner / per_side
    previous = 0.0
    while True:
        axis = (np.arange(per_side) + 0.5) * step - half
        x, y = np.meshgrid(axis, axis, indexing="ij")
        ring = np.maximum(np.abs(x), np.abs(y)) >= previous
        xy = np.stack([x[ring], y[ring]], axis=-1)
        points.append(xy)
        spacing.append(np.full(len(xy), step))
        if half >= radius:
            break
        previous, half, step = half, 2 * half, 2 * step
    xy, s = np.concatenate(points), np.concatenate(spacing)
    keep = np.linalg.norm(xy, axis=1) <= radius
    return xy[keep], s[keep]

