"""Hidden surfaces next to what one camera saw: back layers behind occlusion edges and closed object backs.

Both work on the input image grid (OpenCV frame of the input camera) and return plain arrays
(points, normals, scales, colours) that ``completion`` turns into unobserved Gaussians.

- Back layers: behind every foreground edge the background surface is continued into the
  foreground's side, as wide as the parallax of a camera move of ``baseline`` there (beside a mid-ramp pixel
  the background is the farthest one a couple of pixels across: filled depth ramps many edges). Depth is
  extrapolated along the background surface (inverse depth is affine on planes, so a plane
  continues exactly, but a wide band stays within 18 % of the edge's background depth: far from the
  edge the gradient is no guide); colour is the background's mirrored across the edge and low-passed
  (``BACK_LAYER_BLUR``: a second view compares it with a real background it cannot know in detail;
  nothing is taken from the foreground).
- Object backs: each object (a layer component that is not floor or wall) is closed by a back
  surface pushed along the view rays by a thickness estimated from its silhouette (its median
  width, and no more than the silhouette's local width there: thin parts stay thin), no lower (higher)
  than the object reaches below (above) each pixel in the image (a table top seen from above stays a slab
  instead of a sheet hanging under it, ``vertical_reach_depth``), no farther than its top seen from above
  reaches where that shows it much thinner than its silhouette (a chair's back, ``top_reach_depth``),
  stopping short of the floor/walls behind it, and by side strips joining front and back along its
  silhouette, so side views and the collision proxy see a solid. Backs and sides take the object's own
  colours low-passed within its silhouette (``object_colour_field``): a copy of the front's detail pulled
  along the rays reads as stripes and "glass shards" from the side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from lyra_sim.camera import pixel_directions
from lyra_sim.single_view.layers import DepthLayers


@dataclass
class Surfels:
    """Plain surfel arrays in the camera frame (see surfels.surfel_world)."""

    points: np.ndarray  # (M, 3)
    normals: np.ndarray  # (M, 3) unit
    scales: np.ndarray  # (M, 3): tangent 1, tangent 2, normal
    colors: np.ndarray  # (M, 3) in [0, 1]
    tangents: np.ndarray | None = None  # (M, 3) first axis when it matters (elongated strips)

    @staticmethod
    def empty() -> Surfels:
        z = np.zeros((0, 3))
        return Surfels(z, z, z, z)

    def subset(self, mask: np.ndarray) -> Surfels:
        return Surfels(self.points[mask], self.normals[mask], self.scales[mask], self.colors[mask],
                       None if self.tangents is None else self.tangents[mask])

    @staticmethod
    def concatenate(parts: list[Surfels]) -> Surfels:
        parts = [p for p in parts if len(p.points)]
        if not parts:
            return Surfels.empty()
        tangents = None
        if any(p.tangents is not None for p in parts):
            tangents = np.concatenate([p.tangents if p.tangents is not None else _default_tangents(p.normals)
                                       for p in parts])
        return Surfels(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("points", "normals", "scales",
                                                                                   "colors")), tangents)


def _default_tangents(normals: np.ndarray) -> np.ndarray:
    return np.where(np.abs(normals[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0.0, 1, 0]]))


BACK_EXTRAPOLATION = 0.85  # a back layer's inverse depth stays above this share of its edge's background's
BACK_LAYER_BLUR = 0.008  # back layers' colour: the background's, low-passed by this share of the image size
BACKGROUND_REACH = 2  # pixels: beside a mid-ramp pixel, the background is the farthest far-edge pixel this near
BACK_LAYER_SIGMA = 1.0  # back layer surfels' std in pixel footprints (0.6 left seams between neighbours of different
# depths through which the far backdrop showed: a light band beside the front tyre in Middlebury's right view)
BACK_LAYER_OFFSET = 0.03  # back layers sit this share of their depth behind the background they continue: at
# the input view the seen background beside an edge stays in front of their footprints


def back_layers(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, layers: DepthLayers, normals: np.ndarray,
                baseline: float, max_width: float = 0.25, sigma: float = BACK_LAYER_SIGMA) -> Surfels:
    """Background surfels behind the foreground edges (module docstring); ``baseline`` in world units."""
    h, w = depth.shape
    near = layers.near_edge
    if not near.any():
        return Surfels.empty()
    focal = float(np.sqrt(K[0, 0] * K[1, 1]))
    inv = layers.inv_depth
    bg_inv = layers.background_inv_depth()
    far = layers.far_edge
    _, (fv_all, fu_all) = ndimage.distance_transform_edt(~far, return_indices=True)  # the far-edge pixel nearest
    # A near-edge pixel next to a mid-ramp pixel (the far side of one jump and the near side of another: filled
    # depth ramps many occlusion edges over a pixel or two) takes its background from the farthest far-edge pixel
    # within BACKGROUND_REACH pixels instead: the neighbour across its jump made the band behind the edge a few
    # pixels narrow and the second view's strip holed.
    ramp = far & near
    if ramp.any():
        reach_inv, (rv, ru) = _farthest_within(np.where(far & ~near, inv, np.inf), BACKGROUND_REACH)
        beside_ramp = near & ndimage.binary_dilation(ramp) & np.isfinite(reach_inv)
        bg_inv = np.where(beside_ramp, np.minimum(bg_inv, reach_inv), bg_inv)
        fv_all, fu_all = np.where(beside_ramp, rv, fv_all), np.where(beside_ramp, ru, fu_all)
    width = np.where(near, focal * baseline * np.maximum(inv - bg_inv, 0.0) + 2.0, 0.0)
    width = np.minimum(width, max_width * max(h, w))
    distance, (ev, eu) = ndimage.distance_transform_edt(~near, return_indices=True)
    band = (distance <= width[ev, eu]) & (inv > bg_inv[ev, eu] * 1.04) & (bg_inv[ev, eu] > 0)
    if not band.any():
        return Surfels.empty()
    bv, bu = np.nonzero(band)
    ev, eu = ev[band], eu[band]
    fv, fu = fv_all[ev, eu], fu_all[ev, eu]
    grad_u, grad_v = layers.gradients(inv)
    inv_b = inv[fv, fu] + grad_u[fv, fu] * (bu - fu) + grad_v[fv, fu] * (bv - fv)
    inv_b = np.clip(inv_b, BACK_EXTRAPOLATION * inv[fv, fu], inv[bv, bu] / 1.04)
    # Colour: mirror the background across its edge pixel; fall back to the edge pixel itself.
    mv, mu = 2 * fv - bv, 2 * fu - bu
    ok = (mv >= 0) & (mv < h) & (mu >= 0) & (mu < w)
    mv, mu = np.where(ok, mv, fv), np.where(ok, mu, fu)
    ok = inv[mv, mu] <= inv[fv, fu] * 1.1  # the mirrored pixel must itself be background
    mv, mu = np.where(ok, mv, fv), np.where(ok, mu, fu)
    z = (1.0 + BACK_LAYER_OFFSET) / inv_b
    points = pixel_directions(torch.from_numpy(np.asarray(K, np.float64)), h, w).numpy()[bv, bu] * z[:, None]
    footprint = z / focal
    scales = np.stack([sigma * footprint, sigma * footprint, 0.1 * footprint], axis=-1)
    return Surfels(points, normals[fv, fu], scales, _low_passed(rgb, ~near, BACK_LAYER_BLUR * max(h, w))[mv, mu])


def _farthest_within(inv: np.ndarray, radius: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The smallest inverse depth (H,W) within ``radius`` pixels (a square window) of each pixel, and its pixel's
    rows and columns (H,W each)."""
    h, w = inv.shape
    padded = np.pad(inv, radius, mode="constant", constant_values=np.inf)
    offsets = [(dv, du) for dv in range(-radius, radius + 1) for du in range(-radius, radius + 1)]
    stack = np.stack([padded[radius + dv : radius + dv + h, radius + du : radius + du + w] for dv, du in offsets])
    best = np.argmin(stack, axis=0)
    shift = np.array(offsets)[best]
    rows, cols = np.mgrid[0:h, 0:w]
    return np.take_along_axis(stack, best[None], axis=0)[0], (rows + shift[..., 0], cols + shift[..., 1])


def _low_passed(rgb: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """``rgb`` blurred over the ``mask`` pixels only (normalised convolution, Gaussian std ``sigma`` pixels)."""
    weight = ndimage.gaussian_filter(mask.astype(np.float64), sigma)
    blurred = [ndimage.gaussian_filter(rgb[..., c] * mask, sigma) for c in range(3)]
    return np.stack(blurred, axis=-1) / np.maximum(weight, 1e-9)[..., None]


def local_width(labels: np.ndarray, max_radius: float = 256.0) -> np.ndarray:
    """Per pixel of each labelled region (H,W; 0 = none): the diameter in pixels of the largest disk inside its
    own region that covers it (the "local thickness" of the silhouette; 0 outside the regions).

    A fork or a spoke is as wide as itself, a box as wide as its inscribed disk, however wide its whole object
    is. Disks of radii 1, 2, 3, 5, 7, 10, ... (steps of about 1.4x; a disk of radius r spans 2r + 1 pixels): a
    pixel is covered at radius r when a pixel r or more from the region's border pixels (exact Euclidean
    distance transform) lies within r of it.
    """
    h, w = labels.shape
    padded = np.pad(labels, 1, mode="constant")
    interior = labels > 0
    for dv, du in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        interior &= padded[1 + dv : 1 + dv + h, 1 + du : 1 + du + w] == labels
    inside = ndimage.distance_transform_edt(interior)  # distance to the nearest pixel of another region
    width = np.where(labels > 0, 1.0, 0.0)
    radius = 1.0
    while radius <= min(max_radius, float(inside.max())):
        covered = ndimage.distance_transform_edt(inside < radius) <= radius
        width = np.where(covered & (labels > 0), 2.0 * radius + 1.0, width)
        radius = np.ceil(radius * 1.4)
    return width


MAX_TILT_STRETCH = 4.0  # cap on the stretch of undersides seen at grazing angles (the lift's cap)
SLAB_SHARE = 0.5  # a back less deep than this share of its silhouette's thickness closes a slab (a table top)
BACK_COLOUR_SIGMA = 0.25  # low-pass of an object's colours for its back and sides, in its median widths


def object_colour_field(rgb: np.ndarray, labels: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Each object's colours (H,W,3) blurred within its own silhouette (normalised convolution per object,
    Gaussian std ``BACK_COLOUR_SIGMA`` x its median width ``widths[label]`` in pixels): low-frequency colour
    that belongs to that object only."""
    out = np.zeros_like(rgb, dtype=np.float64)
    for label in range(1, len(widths)):
        mask = labels == label
        if not mask.any():
            continue
        rows, cols = np.nonzero(mask)
        sigma = max(1.0, BACK_COLOUR_SIGMA * float(widths[label]))
        pad = int(3 * sigma) + 1
        r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad + 1, mask.shape[0])
        c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad + 1, mask.shape[1])
        m = mask[r0:r1, c0:c1].astype(np.float64)
        weight = ndimage.gaussian_filter(m, sigma)
        for c in range(3):
            blurred = ndimage.gaussian_filter(rgb[r0:r1, c0:c1, c] * m, sigma) / np.maximum(weight, 1e-9)
            out[r0:r1, c0:c1, c] = np.where(mask[r0:r1, c0:c1], blurred, out[r0:r1, c0:c1, c])
    return out


UNDERSIDE_AMBIENT = 0.65  # a face turned straight down gets at most this share of its top's light
UNDERSIDE_SHADE_MIN = 0.35  # ... and at least this share
UNDERSIDE_MIN_PIXELS = 32  # seen object pixels a face orientation needs for its brightness to count
UP_FACING, SIDE_FACING = 0.7, 0.3  # |cos| to up of a face counted as facing up / sideways
SIDE_BINS = 6  # side faces are grouped by the direction they face (azimuth) into this many bins


def underside_shade(rgb: np.ndarray, field: np.ndarray, normals: np.ndarray, objects: np.ndarray,
                    up: np.ndarray) -> float:
    """The brightness of an object's face turned straight down, as a share of its seen top's.

    A face turned down sees the floor, not the lights above: at most ``UNDERSIDE_AMBIENT`` of the top's light
    reaches it (an ambient-occlusion prior; PyBullet's renderer gives 0.66: ambient 0.6 over ambient plus diffuse
    0.35 x cos of a light 30 degrees from the vertical), and no more than the image shows on the object pixels
    facing away from the light: the darkest side-facing direction's median brightness over that of the up-facing
    pixels, each relative to the object's own low-passed colour ``field`` (H,W,3: the objects' own colours cancel).
    ``objects`` (H,W) marks the object pixels, ``up`` the camera-frame up vector."""
    rise = normals @ up
    brightness = rgb.mean(-1) / np.maximum(field.mean(-1), 1e-3)
    top = objects & (rise > UP_FACING)
    shade = UNDERSIDE_AMBIENT
    if top.sum() >= UNDERSIDE_MIN_PIXELS:
        across = np.cross(up, [1.0, 0.0, 0.0])
        across /= max(float(np.linalg.norm(across)), 1e-12)
        along = np.cross(across, up)
        azimuth = np.arctan2(normals @ across, normals @ along)
        bins = np.floor((azimuth + np.pi) / (2 * np.pi) * SIDE_BINS).astype(int) % SIDE_BINS
        side = objects & (np.abs(rise) < SIDE_FACING)
        lit = float(np.median(brightness[top]))
        for b in range(SIDE_BINS):
            faces = side & (bins == b)
            if faces.sum() >= UNDERSIDE_MIN_PIXELS:
                shade = min(shade, float(np.median(brightness[faces])) / max(lit, 1e-6))
    return max(shade, UNDERSIDE_SHADE_MIN)


UP_MIN_FLOOR_PIXELS = 16  # the floor's normal gives "up" for the vertical reach of backs from this many pixels


def _up_direction(normals: np.ndarray, floor: np.ndarray | None) -> np.ndarray | None:
    """The floor's unit normal towards the camera (camera frame) when the image's rows run roughly along it
    (camera rolled by less than 45 degrees, upright), else None."""
    if floor is None or floor.sum() < UP_MIN_FLOOR_PIXELS:
        return None
    up = np.median(normals[floor], axis=0)
    up /= max(float(np.linalg.norm(up)), 1e-12)
    return up if -up[1] > abs(up[0]) else None


def vertical_reach_depth(labels: np.ndarray, depth: np.ndarray, rays: np.ndarray, up: np.ndarray,
                         slack: np.ndarray) -> np.ndarray:
    """Per pixel (H,W): the depth along its ray beyond which a back would leave the height range its object
    shows in the image: lower than the lowest point of the object's run of pixels below it in its column (for
    a ray going down), or higher than the highest point of its run above it (for a ray going up), by more than
    ``slack`` (H,W, world units); inf where the run is cut off by a nearer occluder or the image border (how
    far the object reaches there is unknown) and for level rays.

    A table top seen from above at a grazing angle is wide and deep in the image, but the run below each of
    its pixels ends at its front edge 3 cm lower: a back pushed along the down-going rays stays within the
    slab instead of hanging under it. A box's top continues in its front face down to the floor: deep back.
    ``rays`` (H,W,3) with z = 1, ``up`` the camera-frame unit up vector (``_up_direction``)."""
    height = depth * (rays @ up)
    lowest = _run_extreme(height, labels, depth)
    highest = -_run_extreme(-height[::-1], labels[::-1], depth[::-1])[::-1]
    rise = rays @ up
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.where(rise < -1e-6, (lowest - slack) / rise, np.where(rise > 1e-6, (highest + slack) / rise,
                                                                         np.inf))
    return np.where(np.isnan(reach), np.inf, reach)


TOP_RESOLVED_PX = 2.0  # the top bound holds where an object as deep as its prior thickness would show this many
# pixels of top face
TOP_SLACK_PX = 2.0  # backs may reach this many pixel footprints past the top's far edge
TOP_THIN_SHARE = 0.5  # ... where the column shows the object less deep than this share of its silhouette's thickness


def top_reach_depth(labels: np.ndarray, depth: np.ndarray, rays: np.ndarray, up: np.ndarray, slack: np.ndarray,
                    prior: np.ndarray, focal: float) -> np.ndarray:
    """Per pixel (H,W): the depth along its ray beyond which a back would lie farther from the camera
    (horizontally) than the farthest point of its object's run of pixels above it in its column, by more than
    ``slack``; inf where that run's top would not show a top face ``TOP_RESOLVED_PX`` pixels high even if the
    object were ``prior`` (H,W, the silhouette's thickness) deep (a top seen level or from below, or from too far
    away), or the run is cut off by a nearer occluder or the image border.

    Seen from above, an object shows its top: a box's top recedes as deep as the box, a 4 cm board facing the
    camera (a chair's back) shows a 4 cm top edge, and its back stays 4 cm behind its face instead of the
    silhouette's width. Other arguments as ``vertical_reach_depth``."""
    rise = rays @ up
    across = np.linalg.norm(rays - rise[..., None] * up, axis=-1)  # horizontal distance per unit depth
    farthest = -_run_extreme(-(depth * across)[::-1], labels[::-1], depth[::-1])[::-1]
    top_rise = -_run_extreme(-rise[::-1], labels[::-1], depth[::-1])[::-1]  # rays rise up the image: the run's
    # largest rise is its top pixel's
    shown = prior * np.maximum(-top_rise, 0.0) / np.linalg.norm(rays, axis=-1) * focal / depth
    # How deep the column shows the object (from the nearest point of its run below the pixel, or the pixel
    # itself where that run is cut off): the top only overrides the silhouette where it shows a much thinner
    # object (a board, not a box: a box's silhouette-deep back overshoots its far edge a little, which nearby
    # views see as a closed edge; bounding a low box's back by its top left a one-pixel seam of floor along its
    # far edge at bench_completeness's boxes_wall forward 0.7 m, -0.7 dB)
    nearest = _run_extreme(depth * across, labels, depth)
    nearest = np.where(np.isnan(nearest), depth * across, nearest)
    thin = farthest - nearest < TOP_THIN_SHARE * prior * across
    reach = np.where((shown >= TOP_RESOLVED_PX) & thin, (farthest + slack) / np.maximum(across, 1e-9), np.inf)
    return np.where(np.isnan(reach), np.inf, reach)


RUN_OCCLUDED = 0.96  # a run of object pixels ends at an occluder when the pixel past its end is this much nearer


def _run_extreme(values: np.ndarray, labels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Per pixel (H,W): the smallest of ``values`` over its labelled run from it down its column (rows of
    increasing index, the same label without a break); nan where the run ends at the image border or at a
    nearer pixel of another label (an occluder hides where it really ends)."""
    h = values.shape[0]
    out = values.astype(np.float64).copy()
    out[h - 1] = np.nan
    for v in range(h - 2, -1, -1):
        same = (labels[v] == labels[v + 1]) & (labels[v] > 0)
        occluded = depth[v + 1] < RUN_OCCLUDED * depth[v]
        out[v] = np.where(same, np.minimum(values[v], out[v + 1]), np.where(occluded, np.nan, values[v]))
    return out


def object_backs(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, layers: DepthLayers, normals: np.ndarray,
                 objects: np.ndarray, behind: np.ndarray, max_thickness: float, floor: np.ndarray | None = None,
                 stride: int = 2, sigma: float = 0.6, smooth_colours: bool = True,
                 shade_undersides: bool = True) -> tuple[Surfels, int]:
    """Back and side surfels closing every object, and the number of objects.

    ``smooth_colours``: backs and sides take the object's low-passed colours (``object_colour_field``), else
    a copy of the front pixel's colour. ``shade_undersides``: backs facing down (below a top seen from above)
    are darkened towards ``underside_shade`` by how far down they face: an underside lit like the top reads as a
    bright second top.

    ``objects`` (H,W) marks non-plane pixels; a connected part of it (split at depth jumps) is an object
    when it occludes something (it holds the near side of a depth jump) or stands on the ``floor`` mask;
    other parts (background clutter) get no back. ``behind`` (H,W) is the depth along each ray at which
    a known plane (floor, wall) lies behind the pixel (inf where none); backs stop short of it.
    """
    h, w = depth.shape
    cut = objects & ~layers.far_edge  # split touching objects at their depth jumps
    labels, count = ndimage.label(cut)
    if count == 0:
        return Surfels.empty(), 0
    _, (nv, nu) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    labels = np.where(objects, labels[nv, nu], 0)
    anchored = layers.near_edge if floor is None else layers.near_edge | ndimage.binary_dilation(floor, iterations=2)
    real = np.zeros(count + 1, bool)
    real[np.unique(labels[anchored & (labels > 0)])] = True
    real[0] = False
    labels = (np.cumsum(real) * real)[labels]  # renumber the objects 1..count
    objects = labels > 0
    count = int(real.sum())
    if count == 0:
        return Surfels.empty(), 0
    focal = float(np.sqrt(K[0, 0] * K[1, 1]))
    footprint = depth / focal
    # Thickness from the silhouette: as deep as the object's smaller median metric extent (rows or columns),
    # so a box is as deep as it is wide and a table top seen from above stays a slab.
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    cols = np.broadcast_to(np.arange(w)[None, :], (h, w))
    extents = []
    for index, n in ((rows, h), (cols, w)):
        sums = np.bincount((labels * n + index)[objects], footprint[objects], minlength=(count + 1) * n)
        sums = sums.reshape(count + 1, n)
        extents.append(np.array([np.median(r[r > 0]) if (r > 0).any() else 0.0 for r in sums]))
    # ... and no deeper than the silhouette is wide around the pixel (``local_width``): thin parts of an object
    # (a fork, a wheel, a handle) get thin backs and sides, which a second view a few cm away otherwise sees as
    # "glass shards" drawn over the real background beside them.
    thickness = np.minimum(np.minimum(*extents)[labels], local_width(labels) * footprint)
    thickness = np.clip(thickness, 2 * footprint, max_thickness)
    median_width_px = np.minimum(*extents) / np.maximum(np.array([np.median(footprint[labels == i]) if i else 1.0
                                                                  for i in range(count + 1)]), 1e-12)
    colours = object_colour_field(rgb, labels, median_width_px) if smooth_colours else rgb
    rays = pixel_directions(torch.from_numpy(np.asarray(K, np.float64)), h, w).numpy()
    back = depth + thickness
    up = _up_direction(normals, floor)
    if up is not None:  # ... and within the height range and the top the object shows in its pixel's column
        reach = np.minimum(vertical_reach_depth(labels, depth, rays, up, 2 * footprint),
                           top_reach_depth(labels, depth, rays, up, TOP_SLACK_PX * footprint, thickness, focal))
        back = np.minimum(back, np.maximum(reach, depth + 2 * footprint))
    back = np.minimum(back, behind - 2 * footprint)
    closed = objects & (back > depth + footprint)
    # Sides: silhouette pixels get strips along their view ray from front to back, facing outwards (towards
    # the neighbours that are not the same object).
    padded = np.pad(labels, 1, mode="constant")
    outward_2d = np.zeros((h, w, 2))
    edge = np.zeros((h, w), bool)
    for dv, du in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        other = padded[1 + dv : 1 + dv + h, 1 + du : 1 + du + w] != labels
        outward_2d[other] += (du, dv)
        edge |= other  # (a thin object's opposite sides cancel in outward_2d but it is still an edge)
    # Backs: every stride-th pixel, facing away from the camera (a mirrored shell of the front).
    grid = np.zeros((h, w), bool)
    grid[stride // 2 :: stride, stride // 2 :: stride] = True
    sel = closed & grid & ~ndimage.binary_dilation(edge, iterations=stride)  # backs stay inside the silhouette
    fp = footprint[sel] * stride * (back[sel] / depth[sel])
    back_colours = colours[sel]
    down = np.zeros(int(sel.sum())) if up is None else np.clip(normals[sel] @ up, 0.0, 1.0)  # backs face -normal
    if shade_undersides and down.any():  # a back turned down (a table top's underside) lies in its own shadow
        shade = underside_shade(rgb, colours, normals, objects, up)
        back_colours = back_colours * (1.0 - (1.0 - shade) * down)[:, None]
    # The undersides of slabs (backs facing down more than UP_FACING that the object's reach in its image column
    # kept much thinner than its silhouette: a table top, not a box) are stretched like the lift's surfels, along
    # the view ray's trace on their surface by 1 / cos (up to MAX_TILT_STRETCH): a table top seen at a grazing
    # angle gets an underside of long surfels that close when seen from below, not rows of round ones whose gaps
    # show the objects' backs above it. (Stretching every back, boxes' too, cost bench_completeness's boxes_wall
    # 0.5 dB at its lyra up and zoom_in views. Continuing undersides under the objects standing on them, along the
    # image columns, gained 0.005 of brightness under the table but cost Middlebury's right view 0.09 dB co-visible.)
    view = rays[sel] / np.linalg.norm(rays[sel], axis=-1, keepdims=True)
    cos = np.clip(np.abs((normals[sel] * view).sum(-1)), 1.0 / MAX_TILT_STRETCH, 1.0)
    slab = back[sel] - depth[sel] < SLAB_SHARE * thickness[sel]
    stretch = np.where((down > UP_FACING) & slab, 1.0 / cos, 1.0)
    tilt = view - (view * normals[sel]).sum(-1, keepdims=True) * normals[sel]
    back_part = Surfels(rays[sel] * back[sel][:, None], -normals[sel],
                        np.stack([sigma * fp * stretch, sigma * fp, 0.1 * fp], axis=-1), back_colours, tangents=tilt)
    sel = closed & edge
    sv, su = np.nonzero(sel)
    length = back[sv, su] - depth[sv, su]
    pieces = np.clip(np.ceil(length / (4 * footprint[sv, su] * stride)), 1, 24).astype(int)
    index = np.repeat(np.arange(len(sv)), pieces)
    offset = np.concatenate([(np.arange(n) + 0.5) / n for n in pieces]) if len(pieces) else np.zeros(0)
    z = depth[sv, su][index] + offset * length[index]
    # Strips sit 0.7 pixel inside the silhouette, so at the input view they hide behind the object's own front
    # surfels instead of showing over the background pixel next to it.
    inward = -outward_2d[sv, su] / np.maximum(np.linalg.norm(outward_2d[sv, su], axis=-1, keepdims=True), 1e-9)
    ray = np.stack([(su + 0.5 + 1.0 * inward[:, 0] - K[0, 2]) / K[0, 0],
                    (sv + 0.5 + 1.0 * inward[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(sv))], axis=-1)[index]
    ray_unit = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    outward = np.concatenate([outward_2d[sv, su], np.zeros((len(sv), 1))], axis=-1)[index]
    outward -= (outward * ray_unit).sum(-1, keepdims=True) * ray_unit
    norm = np.linalg.norm(outward, axis=-1, keepdims=True)
    sideways = np.cross(ray_unit, np.array([0.0, 1.0, 0.0]))  # thin objects (both sides open): face sideways
    sideways /= np.maximum(np.linalg.norm(sideways, axis=-1, keepdims=True), 1e-9)
    outward = np.where(norm > 1e-9, outward / np.maximum(norm, 1e-9), sideways)
    seg = (length / pieces)[index] * np.linalg.norm(ray, axis=-1)
    width = footprint[sv, su][index] * (z / depth[sv, su][index])
    side_part = Surfels(ray * z[:, None], outward,
                        np.stack([0.6 * seg, sigma * width, 0.1 * width], axis=-1), colours[sv, su][index],
                        tangents=ray_unit)
    return Surfels.concatenate([back_part, side_part]), count
