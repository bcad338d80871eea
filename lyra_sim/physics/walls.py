"""Walls the completion found, as boxes of real thickness in the collider (never holes, solid from both sides).

``lyra_sim.single_view.completion`` records each wall plane it continued (``info["completion"]["wall_planes"]``,
in the world's camera frame). In an aligned world each becomes boxes behind its plane (away from the camera):
the wall stands where the world's Gaussians lie on the plane (seen and invented ones, each covering its own
footprint; parts hidden behind furniture and enclosed by the wall filled), up to the wall's top, minus what
a measured view saw through (a doorway). Columns of the plane
with the same occupied heights are merged into one box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lyra_sim.geometry.tsdf import DepthView
from lyra_sim.physics.measured import view_relation
from lyra_sim.world import GaussianWorld

WALL_THICKNESS_M = 0.1  # metres in a metric world: the box behind the plane
BAND_VOXELS = 2.0  # Gaussians (and collider triangles) this close to the plane lie on the wall
MAX_CELLS = 4000  # along the wall and up it: cells grow beyond a voxel when the wall is longer
FOOTPRINT_SIGMAS = 1.5  # a Gaussian covers the plane this many of its largest standard deviations around it
MAX_SEEN_THROUGH = 0.5  # a plane the measured views see past over more of its visible area is no wall
SILL_VOXELS = 4.0  # a column seen through this close to the floor is open down to it
COLUMN_PROBES = 16  # heights per wall column tested for being in a view
MIN_FACING = 0.7  # a triangle lies on the wall when its normal's cosine with the wall's exceeds this


@dataclass
class WallPlane:
    """A vertical plane in an aligned world: normal . x + offset = 0, the normal horizontal, towards the camera."""

    normal: np.ndarray  # (3,)
    offset: float
    top: float  # height above the floor (z = 0)

    @property
    def along(self) -> np.ndarray:
        along = np.cross([0.0, 0.0, 1.0], self.normal)
        return along / np.linalg.norm(along)


def wall_planes(world: GaussianWorld) -> list[WallPlane]:
    """The completion's walls carried into the aligned frame (x' = m R x + t, lyra_sim.align); [] without any."""
    planes = (world.info.get("completion") or {}).get("wall_planes") or []
    if not planes or "alignment" not in world.info:
        return []
    transform = np.asarray(world.info["alignment"]["transform"], np.float64)
    metres = float(np.cbrt(np.linalg.det(transform[:3, :3])))
    rotation, shift = transform[:3, :3] / metres, transform[:3, 3]
    out = []
    for plane in planes:
        normal = rotation @ np.asarray(plane["normal"], np.float64)
        normal[2] = 0.0  # vertical in the floor frame the completion used; the alignment keeps that floor
        norm = np.linalg.norm(normal)
        if norm < 1e-6:
            continue
        offset = (metres * float(plane["offset"]) - normal @ shift) / norm
        out.append(WallPlane(normal / norm, offset, metres * float(plane["top"])))
    return out


@dataclass
class WallBox:
    """The boxes of one wall and the occupancy grid they came from (to tell which triangles they replace)."""

    plane: WallPlane
    occupied: np.ndarray  # (columns, rows) bool
    origin: tuple[float, float]  # (along, z) of cell (0, 0)'s corner
    cell: float
    band: float
    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3), outward

    def covers(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: points within the band of the plane over an occupied cell."""
        d = points @ self.plane.normal + self.plane.offset
        i = np.floor((points @ self.plane.along - self.origin[0]) / self.cell).astype(np.int64)
        j = np.floor((points[:, 2] - self.origin[1]) / self.cell).astype(np.int64)
        cols, rows = self.occupied.shape
        inside = (np.abs(d) < self.band) & (i >= 0) & (i < cols) & (j >= 0) & (j < rows)
        out = np.zeros(len(points), bool)
        out[inside] = self.occupied[i[inside], j[inside]]
        return out


def wall_box(plane: WallPlane, means: np.ndarray, sigmas: np.ndarray, views: list[DepthView], voxel: float,
             thickness: float) -> WallBox | None:
    """Boxes of ``thickness`` behind ``plane`` where the Gaussians (centres ``means``, largest standard deviations
    ``sigmas``) lie on it, not seen through by a measured view; None when no Gaussian does or the views see
    through more than MAX_SEEN_THROUGH of the plane where they look at it (the completion takes a row of
    furniture fronts for a wall now and then)."""
    band = BAND_VOXELS * voxel
    # Floor Gaussians meet every wall plane along its foot line, also past the wall's end: they are no wall (with
    # them a wall box ran on along the whole completed floor, across open floor the robot saw).
    on = (np.abs(means @ plane.normal + plane.offset) < band) & (means[:, 2] > band)
    if not on.any():
        return None
    a, z = means[on] @ plane.along, means[on, 2]
    reach = np.maximum(FOOTPRINT_SIGMAS * sigmas[on], 0.5 * voxel)
    lo_a, hi_a = float((a - reach).min()), float((a + reach).max())
    hi_z = plane.top
    if hi_z <= 0:
        return None
    cell = max(voxel, (hi_a - lo_a) / MAX_CELLS, hi_z / MAX_CELLS)
    cols, rows = int(np.ceil((hi_a - lo_a) / cell)), int(np.ceil(hi_z / cell))
    # Each Gaussian paints the cells under its footprint: a 2D difference array, summed up.
    paint = np.zeros((cols + 1, rows + 1), np.int64)
    i0 = np.clip(np.floor((a - reach - lo_a) / cell), 0, cols).astype(np.int64)
    i1 = np.clip(np.ceil((a + reach - lo_a) / cell), 0, cols).astype(np.int64)
    j0 = np.clip(np.floor((z - reach) / cell), 0, rows).astype(np.int64)
    j1 = np.clip(np.ceil((z + reach) / cell), 0, rows).astype(np.int64)
    for di, dj, sign in ((i0, j0, 1), (i1, j0, -1), (i0, j1, -1), (i1, j1, 1)):
        np.add.at(paint, (di, dj), sign)
    occupied = paint.cumsum(axis=0).cumsum(axis=1)[:cols, :rows] > 0
    # Only columns some view looks at need every cell checked (a completed wall runs on far outside the views):
    # COLUMN_PROBES heights per column find them, widened by a column each side.
    probe_i, probe_j = np.meshgrid(np.arange(cols), np.linspace(0, rows - 1, COLUMN_PROBES).round(), indexing="ij")
    probed, _ = view_relation(_cell_centres(plane, lo_a, cell, probe_i.ravel(), probe_j.ravel()), views, band)
    looked_at = np.convolve(probed.reshape(cols, -1).any(axis=1), np.ones(3), mode="same") > 0
    ci, cj = np.nonzero(looked_at[:, None] & np.ones((1, rows), bool))
    in_view, through = view_relation(_cell_centres(plane, lo_a, cell, ci, cj), views, band)
    if in_view.any() and through[in_view].mean() > MAX_SEEN_THROUGH:
        return None  # the views see past most of it: the fronts of furniture in a row, not a wall
    # Parts of the wall hidden behind furniture hold no Gaussians; enclosed by the wall (the floor closing it
    # below) they are wall all the same. What a view saw through stays open (a doorway).
    from scipy.ndimage import binary_fill_holes

    occupied = binary_fill_holes(np.concatenate([np.ones((cols, 1), bool), occupied], axis=1))[:, 1:]
    # Above the highest wall cell of a column, up to the wall's top, what no view looked at is wall too (the
    # completion found the wall cut off by the image: a room-high wall).
    viewed = np.zeros_like(occupied)
    viewed[ci[in_view], cj[in_view]] = True
    height = np.where(occupied.any(axis=1), rows - np.argmax(occupied[:, ::-1], axis=1), 0)
    above = (np.arange(rows)[None, :] >= height[:, None]) & (height[:, None] > 0)
    occupied |= above & ~viewed & ~np.flip(np.cumsum(np.flip(viewed & above, axis=1), axis=1) > 0, axis=1)
    occupied[ci[through], cj[through]] = False
    # Near the floor a view sees the floor just beyond a doorway, not through the plane: no sill under a column
    # seen through within SILL_VOXELS of the floor.
    seen = np.zeros_like(occupied)
    seen[ci[through], cj[through]] = True
    lowest = np.where(seen.any(axis=1), seen.argmax(axis=1), rows)
    sill = (lowest * cell <= SILL_VOXELS * voxel)[:, None] & (np.arange(rows)[None, :] < lowest[:, None])
    occupied &= ~sill
    vertices, faces = _column_boxes(occupied, plane, lo_a, cell, thickness)
    return WallBox(plane, occupied, (lo_a, 0.0), cell, band, vertices, faces)


def _cell_centres(plane: WallPlane, lo_a: float, cell: float, ci: np.ndarray, cj: np.ndarray) -> np.ndarray:
    """World points at the centres of cells (ci, cj) on the plane."""
    return ((lo_a + (ci + 0.5) * cell)[:, None] * plane.along + ((cj + 0.5) * cell)[:, None] * np.array([0.0, 0, 1])
            - plane.offset * plane.normal)


def _column_boxes(occupied: np.ndarray, plane: WallPlane, lo_a: float, cell: float,
                  thickness: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed boxes over the occupied cells: vertical runs per column, equal runs of neighbouring columns merged."""
    runs: dict[tuple[int, int], int] = {}  # (row start, row stop) -> first column of the open box
    boxes = []
    previous = None
    for i in range(occupied.shape[0] + 1):
        column = occupied[i] if i < occupied.shape[0] else np.zeros(occupied.shape[1], bool)
        if previous is not None and np.array_equal(column, previous):
            continue  # the same runs: the open boxes go on
        previous = column
        edges = np.diff(np.concatenate([[0], column.astype(np.int8), [0]]))
        current = set(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))
        for run in list(runs):
            if run not in current:
                boxes.append((runs.pop(run), i, *run))
        for run in current:
            runs.setdefault(run, i)
    if not boxes:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    box = np.array(boxes, np.float64)  # (B, 4): column start, column stop, row start, row stop
    a0, a1 = lo_a + box[:, 0] * cell, lo_a + box[:, 1] * cell
    z0, z1 = box[:, 2] * cell, box[:, 3] * cell
    foot = -plane.offset * plane.normal
    corners = []
    for depth in (0.0, -thickness):  # the front on the plane, the back behind it
        for a, z in ((a0, z0), (a1, z0), (a1, z1), (a0, z1)):
            corners.append(foot + a[:, None] * plane.along + z[:, None] * np.array([0.0, 0.0, 1.0])
                           + depth * plane.normal)
    vertices = np.stack(corners, axis=1)  # (B, 8, 3): front 0-3, back 4-7
    quads = [(0, 1, 2, 3), (5, 4, 7, 6), (4, 0, 3, 7), (1, 5, 6, 2), (4, 5, 1, 0), (3, 2, 6, 7)]
    local = np.array([[q[0], q[1], q[2]] for q in quads] + [[q[0], q[2], q[3]] for q in quads])
    faces = (local[None] + 8 * np.arange(len(box))[:, None, None]).reshape(-1, 3)
    vertices = vertices.reshape(-1, 3)
    # Outward: each face's normal points away from its box's centre.
    centre = vertices.reshape(-1, 8, 3).mean(axis=1)[np.repeat(np.arange(len(box)), len(local))]
    normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    inward = (normals * (vertices[faces[:, 0]] - centre)).sum(axis=1) < 0
    faces[inward] = faces[inward][:, ::-1]
    return vertices, faces.astype(np.int64)


def on_walls(boxes: list[WallBox], vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) bool: triangles lying on a wall box's front (all corners covered, facing along the wall's normal)."""
    out = np.zeros(len(faces), bool)
    if len(faces) == 0:
        return out
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    norm = np.maximum(np.linalg.norm(normals, axis=1), 1e-12)
    for box in boxes:
        facing = np.abs(normals @ box.plane.normal) > MIN_FACING * norm
        covered = np.all([box.covers(corners[:, k]) for k in range(3)], axis=0)
        out |= facing & covered
    return out
