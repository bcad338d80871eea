"""The evidence a collider has in a world that came without measured depth (a 3DGS file from another tool: a
Lyra PLY, a Marble SPZ, a capture trained elsewhere, or one of ours with its provenance stripped).

A splat world was made for the view it was made from: seen from its own camera, its median depth (where
transmittance crosses 0.5) is the surface its maker measured or reconstructed (for a world lifted from one RGB-D
frame it equals that frame's depth within millimetres). So that render, of the world without its floaters
(lyra_sim.physics.floaters), stands in for the measured views of the RGB-D path (lyra_sim.physics.proxy): meshed
with edges stopping at depth jumps (at the centres of its silhouette pixels: a render's silhouettes spill already,
SPLAT_EDGE_PX), sides and lids closing foreground objects, the splats filling in only what it
does not explain (the fused surface's side of the truncation band behind that view's thin surfaces left out:
SPLAT_UNDER_VOXELS). The scene's extent is taken from what that view sees, not from every Gaussian: a completion's
far backdrop sphere or a trained world's distant haze would make the voxels coarse and the fused volume huge
(21 m instead of 4 m on the crates scene: voxels of 13 cm, 100 s of decimation).

The view: the world's generating camera (``info["alignment"]["camera_to_world"]`` of an aligned world, the origin
of an OpenCV-frame one), its intrinsics from ``info["intrinsics"]`` and ``info["image_size"]`` when the file kept
them, else from the Gaussians' layout (``layout_intrinsics``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lyra_sim.camera import Camera
from lyra_sim.geometry.tsdf import DepthView
from lyra_sim.physics.floaters import FloaterReport, find_floaters
from lyra_sim.physics.walls import WallPlane
from lyra_sim.world import GaussianWorld, WorldError

FOV_QUANTILES = (0.05, 0.95)  # of the centres' directions in front of the camera: the field the world fills
MIN_HALF_FOV_DEG, MAX_HALF_FOV_DEG = 20.0, 55.0
MIN_WIDTH, MAX_WIDTH = 320, 640  # pixels along the wider side of the source view (a coarse world too: its
# grazing surfaces split into strips at a few pixels per Gaussian)
#: The source view is rendered at most this wide (pixels, its wider side), whatever resolution the world has. Its
#: mesh then keeps every pixel (lyra_sim.physics.measured samples a 404 x 314 view at every 2nd: thin legs lost
#: a pixel centre per side, 0.937 -> 0.945 of the splat-file table's seen rays within 5 cm), and its render,
#: disc correction and wall search cost a third less.
SOURCE_VIEW_WIDTH = 320
NEAR = 0.05  # Gaussians nearer the camera than this (world units) do not decide its field of view
MIN_SEEN = 16  # Gaussians in front of the source camera, and surface pixels in its view, to use it at all
CORE_SAMPLE = 100_000  # surface points of the source view whose quantiles give the scene's extent
CORE_MARGIN = 0.25  # ... those this share of the 2-98 % box beyond it are backdrop
WALL_TOP_PERCENTILE = 99.0  # of the wall's points' heights: its top
#: A view laid out from the Gaussians (``layout_intrinsics``) spans the FOV_QUANTILES of their directions: about 90 %
#: of the field of the camera that made them, so a wall running out of its side is seen up to that much narrower
#: than its maker saw it (the doorway's 0.6 m side wall: 0.614 m in the 320x240 input, 0.592 m in the splat file's
#: layout view, under the completion's 0.5 camera heights = 0.600 m, so it was lost). Walls in such a view need this
#: share of the completion's minimum width.
LAYOUT_WALL_WIDTH = FOV_QUANTILES[1] - FOV_QUANTILES[0]
DISC_MATCH = 1e-5  # of the median depth: a Gaussian's centre this close to a pixel's median depth is its Gaussian
DISC_FLAT = 0.3  # a Gaussian whose smallest scale is under this share of its largest is a disc
DISC_REACH = 3.0  # standard deviations: a ray meets a disc within this depth of its centre, or not at all
DISC_GRAZING = 0.15  # a ray closer than this (sine) to a disc's plane keeps the centre's depth
#: The collider's TSDF truncation (lyra_sim.physics.proxy) beside a splat file's source view. At the renders'
#: 4 voxels the invented back under a 3 cm table top hangs a slab 10 cm below it that robot rays to the wall
#: behind stop on (splat-file table: 0.945 of seen rays within 5 cm); at the measured views' 1.5 the renders of
#: invented walls, which disagree by more than that, lose their surface (doorway's unseen side wall 0.986 ->
#: 0.936 within 20 cm). 2 keeps most of both (0.962 / 0.961 in bench_colliders --splat-files; 4 gave 0.936 / 0.986).
SPLAT_TRUNCATION_VOXELS = 2.0
#: Where the source view's mesh (lyra_sim.physics.measured.depth_mesh) puts a silhouette: this many pixels beyond the
#: centre of its last foreground pixel (a depth camera's edge lies half a pixel out, between that centre and the
#: next one's). A render's silhouette spills: the median depth crosses 0.5 where the edge Gaussians' footprints,
#: widened by the rasteriser's eps2d (0.3 px^2 on ~0.46 px standard deviations), still cover half the pixel, so 0.53
#: of the splat-file table's source-view silhouette pixels show the foreground where the true scene shows what lies
#: behind it: the edge is already about half a pixel out. At 0.5 chair edges and legs stood a pixel (~8 mm) wide on
#: every side and robot rays grazing them stopped on the wall's side of them (splat-file table: 0.952 of seen rays
#: within 5 cm; 0.972 / 0.974 / 0.973 at 0.25 / 0 / -0.25 with the two rules below).
SPLAT_EDGE_PX = 0.0
#: The fused TSDF of renders closes a thin top seen only from above (a 3 cm table top, a chair seat) well below it:
#: views from above make the SPLAT_TRUNCATION_VOXELS band behind the top negative, views passing under it make the
#: space there positive, so the fused surface has an underside, and sides around it, 5-10 cm below the top
#: (table: its bottom at z 0.62-0.68 under a true 0.69, which robot rays to the wall behind stopped on: 480 of the
#: 2,077 seen misses). Beside a source view those fused triangles go: within SPLAT_BACKFACE_VOXELS of a source-view
#: surface and facing away from it, or under an up-facing one by at most SPLAT_UNDER_VOXELS (and within a voxel of
#: it across: the band's sides); the source view's own mesh of the top stays.
SPLAT_BACKFACE_VOXELS = 3.0
SPLAT_UNDER_VOXELS = 4.0
PLANE_BAND = 0.02  # of the view's median depth: pixels this close to the floor are moved onto it ...
PLANE_BAND_SIGMAS = 3.0  # ... or this many of the Gaussians' median largest standard deviation, if more
PLANE_WINDOW = 15  # pixels over which a surface is smoothed to tell which way it faces
PLANE_FACING = 0.7  # ... and the cosine with the plane's normal above which it faces the plane's way


@dataclass
class SplatEvidence:
    """What a world without measured depth offers its collider: ``views`` (median-depth renders from the views
    the world was made for), ``core_means`` (points on the surfaces those views see: the scene's extent),
    ``floaters`` (the Gaussians kept out of the collider), ``solid`` (the world without them) and the walls that
    view shows (``source_walls``)."""

    views: list[DepthView]
    core_means: np.ndarray  # (M, 3) float64
    floaters: FloaterReport
    solid: GaussianWorld
    wall_planes: list[WallPlane]  # walls the source view shows (aligned worlds; [] otherwise)


def source_camera_to_world(world: GaussianWorld) -> np.ndarray:
    """Camera-to-world (OpenCV axes) of the camera the world was made from."""
    if "alignment" in world.info:
        return np.asarray(world.info["alignment"]["camera_to_world"], dtype=np.float64)
    if world.frame == "opencv":
        return np.eye(4)
    raise WorldError("splat collider: a z_up world needs info['alignment'] (use lyra_sim.align.align_world)")


def layout_intrinsics(means_cam: np.ndarray, sigmas: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(K, width, height) of a view that holds the Gaussians (camera-frame centres ``means_cam``, largest standard
    deviations ``sigmas``) in front of the camera: the field between the FOV_QUANTILES of their directions
    (symmetric about the axis, MIN_HALF_FOV_DEG..MAX_HALF_FOV_DEG), one pixel per median angular footprint
    (sigma / depth; a lifted or trained Gaussian covers about a pixel of its source), MIN_WIDTH..MAX_WIDTH wide."""
    front = means_cam[:, 2] > NEAR
    if front.sum() < MIN_SEEN:
        raise WorldError(f"splat collider: fewer than {MIN_SEEN} Gaussians in front of the world's camera")
    z = means_cam[front, 2]
    half = []
    for axis in (0, 1):
        lo, hi = np.quantile(means_cam[front, axis] / z, FOV_QUANTILES)
        half.append(float(np.clip(max(abs(lo), abs(hi)), math.tan(math.radians(MIN_HALF_FOV_DEG)),
                                  math.tan(math.radians(MAX_HALF_FOV_DEG)))))
    pixel = max(float(np.median(sigmas[front] / z)), 1e-6)
    scale = float(np.clip(2 * max(half) / pixel, MIN_WIDTH, MAX_WIDTH)) / (2 * max(half))  # pixels per tan unit
    width, height = (max(round(2 * h * scale), 16) for h in half)
    K = np.array([[scale, 0.0, width / 2], [0.0, scale, height / 2], [0.0, 0.0, 1.0]])
    return K, width, height


def _source_intrinsics(world: GaussianWorld, means_cam: np.ndarray) -> tuple[np.ndarray, int, int, bool]:
    """The intrinsics the world recorded (``info["intrinsics"]`` and ``info["image_size"]``), else its layout's
    (``means_cam``: the world's centres in the source camera's frame), scaled to at most SOURCE_VIEW_WIDTH, and
    whether they are the layout's."""
    K, size = world.info.get("intrinsics"), world.info.get("image_size")
    laid_out = K is None or size is None
    if not laid_out:
        K, (width, height) = np.asarray(K, np.float64), (int(s) for s in size)
    else:
        K, width, height = layout_intrinsics(means_cam,
                                             world.scales.detach().cpu().numpy().max(axis=1).astype(np.float64))
    scale = min(1.0, SOURCE_VIEW_WIDTH / max(width, height))
    K = K.copy()
    K[:2] *= scale
    return K, max(round(width * scale), 16), max(round(height * scale), 16), laid_out


def splat_evidence(world: GaussianWorld) -> SplatEvidence | None:
    """The source view's median depth of ``world`` without its floaters, the surface points it sees, the
    floaters (``SplatEvidence``); None when fewer than MIN_SEEN Gaussians lie in front of the source camera or
    its view shows fewer than MIN_SEEN surface pixels (nothing to stand in for a measurement)."""
    floaters = find_floaters(world)
    solid = world.subset(torch.from_numpy(~floaters.mask)) if floaters.dropped else world
    cam_to_world = source_camera_to_world(world)
    world_to_cam = np.linalg.inv(cam_to_world)
    means = solid.means.detach().cpu().numpy().astype(np.float64)
    means_cam = means @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    if (means_cam[:, 2] > NEAR).sum() < MIN_SEEN:
        return None
    K, width, height, laid_out = _source_intrinsics(solid, means_cam)
    camera = Camera(torch.from_numpy(K).float()[None], torch.from_numpy(world_to_cam).float()[None], width, height)
    from lyra_sim.rendering.cpu import median_depth_cpu

    with torch.no_grad():  # (the depth only: no colour pass, as the proxy's own views)
        depth = median_depth_cpu(solid, camera, near=0.01, far=1e10, eps2d=0.3)[0].numpy().astype(np.float32)
    if (depth > 0).sum() < MIN_SEEN:
        return None
    view = on_discs(DepthView(depth, K, world_to_cam), solid)
    walls = []
    if world.frame == "z_up" and "alignment" in world.info:
        walls = source_walls(view, LAYOUT_WALL_WIDTH if laid_out else 1.0)
        sigma = float(np.median(solid.scales.detach().cpu().numpy().max(axis=1)))
        view = on_floor(view, PLANE_BAND_SIGMAS * sigma)
    return SplatEvidence([view], _surface_points(view), floaters, solid, walls)


def on_discs(view: DepthView, world: GaussianWorld) -> DepthView:
    """The view with each pixel's depth moved to where its ray meets the disc of the Gaussian it shows.

    A median depth is the centre depth of the Gaussian at which transmittance crosses 0.5, not the depth at which
    the ray meets it: seen at a grazing angle, the top of a box of 4 cm surfels rises 7 cm. That Gaussian is the one
    whose centre lies at exactly that depth (DISC_MATCH of it), nearest the pixel in the image; where it is flat
    (smallest scale under DISC_FLAT of its largest) the ray meets its plane within DISC_REACH standard deviations
    of the centre depth, and the ray is not within DISC_GRAZING of lying in that plane, the depth moves there.
    Lifted worlds (one surfel per pixel of the same camera) do not change."""
    from scipy.spatial import cKDTree

    from lyra_sim.rotations import quat_to_rotmat

    depth = np.asarray(view.depth, np.float64)
    valid = depth > 0
    rotation, translation = view.world_to_cam[:3, :3], view.world_to_cam[:3, 3]
    centres = world.means.detach().cpu().numpy().astype(np.float64) @ rotation.T + translation
    ahead = np.flatnonzero(centres[:, 2] > NEAR)
    if not valid.any() or len(ahead) == 0:
        return view
    c = centres[ahead]
    K = view.K
    z_unit = DISC_MATCH * float(np.median(depth[valid]))  # this much depth weighs as much as one pixel
    u = K[0, 0] * c[:, 0] / c[:, 2] + K[0, 2]
    v = K[1, 1] * c[:, 1] / c[:, 2] + K[1, 2]
    rows, cols = np.nonzero(valid)
    d = depth[rows, cols]
    gap, index = cKDTree(np.stack([u, v, c[:, 2] / z_unit], axis=1)).query(
        np.stack([cols + 0.5, rows + 0.5, d / z_unit], axis=1), workers=-1)
    g = ahead[index]
    scales = world.scales.detach().cpu().numpy().astype(np.float64)[g]
    axes = quat_to_rotmat(world.quats.detach().cpu()[torch.from_numpy(g)]).numpy().astype(np.float64)
    thin = np.argmin(scales, axis=1)
    normal = np.take_along_axis(axes, thin[:, None, None], axis=2)[..., 0] @ rotation.T  # (M, 3) camera frame
    ray = np.stack([(cols + 0.5 - K[0, 2]) / K[0, 0], (rows + 0.5 - K[1, 2]) / K[1, 1], np.ones(len(d))], axis=1)
    along = (normal * ray).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        on_disc = (normal * centres[g]).sum(axis=1) / along  # z-depth where the ray meets the disc's plane
    largest = scales.max(axis=1)
    move = ((np.abs(centres[g, 2] - d) <= z_unit) & (scales.min(axis=1) < DISC_FLAT * largest)
            & (np.abs(along) > DISC_GRAZING * np.linalg.norm(ray, axis=1)) & np.isfinite(on_disc)
            & (np.abs(on_disc - d) < DISC_REACH * largest) & (on_disc > 0) & np.isfinite(gap))
    out = depth.copy()
    out[rows[move], cols[move]] = on_disc[move]
    return DepthView(out.astype(np.float32), view.K, view.world_to_cam)


def on_floor(view: DepthView, min_band: float = 0.0) -> DepthView:
    """The view of an aligned world with its pixels on the floor (z = 0) moved onto it along their rays.

    Gaussians that are no discs (``on_discs`` keeps their centre depth) and discs seen nearly edge-on leave a
    floor seen at a grazing angle wandering by up to a Gaussian's size, above it (the nearer Gaussian crosses
    first): a field of tilted triangles a few cm high that the floor box does not replace and a robot's wheels
    bump into (a surfel room: 8 % of its collider 4-60 cm from any true surface). A pixel is on the floor when it
    lies within max(PLANE_BAND of the median depth, ``min_band``) of it and its surface, smoothed over the
    PLANE_WINDOW pixels around it that are as near the floor, faces up (cosine over PLANE_FACING), and it is not
    the foot of something standing on the floor (``_below_raised``): the window at a leg's or a crate's lowest
    pixels holds mostly floor, and snapped they left the foot's triangles leaning back onto the floor behind it
    (splat-file crates: 0.980 -> 0.987 of seen rays within 5 cm once they stay)."""
    from scipy.ndimage import uniform_filter

    depth = np.asarray(view.depth, np.float64)
    valid = depth > 0
    if not valid.any():
        return view
    h, w = depth.shape
    K = view.K
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    cam_to_world = np.linalg.inv(view.world_to_cam)
    eye = cam_to_world[:3, 3]
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    rays = rays @ cam_to_world[:3, :3].T  # world direction per unit of z-depth
    points = eye + rays * depth[..., None]
    band = max(PLANE_BAND * float(np.median(depth[valid])), min_band)
    near = valid & (np.abs(points[..., 2]) < band) & (rays[..., 2] < 0)
    weight = np.maximum(uniform_filter(near.astype(np.float64), PLANE_WINDOW), 1e-9)
    smooth = np.stack([uniform_filter(np.where(near, points[..., k], 0.0), PLANE_WINDOW) / weight for k in range(3)],
                      axis=-1)
    normals = np.cross(np.gradient(smooth, axis=1), np.gradient(smooth, axis=0))
    near &= np.abs(normals[..., 2]) > PLANE_FACING * np.maximum(np.linalg.norm(normals, axis=-1), 1e-12)
    near &= ~_below_raised(points, points[..., 2] >= band, valid, depth, PLANE_WINDOW)
    out = depth.copy()
    out[near] = -eye[2] / rays[..., 2][near]
    return DepthView(out.astype(np.float32), view.K, view.world_to_cam)


def _below_raised(points: np.ndarray, raised: np.ndarray, valid: np.ndarray, depth: np.ndarray,
                  reach: int) -> np.ndarray:
    """(H, W) bool: pixels joined to a ``raised`` pixel up their image column, within ``reach`` rows, by steps
    steeper than 45 degrees with no depth jump (lyra_sim.single_view.layers) between them: the foot of a leg, a
    wall or a box, whose lowest pixels lie as near the floor as the floor's own. (``points``: (H, W, 3) world
    points, z up.)"""
    from lyra_sim.single_view.layers import split_layers

    step = points[:-1] - points[1:]  # from each row to the one above it in the image
    steep = step[..., 2] > np.hypot(step[..., 0], step[..., 1])
    joined = steep & ~split_layers(np.where(valid, depth, np.median(depth[valid]))).jump_v & valid[1:] & valid[:-1]
    found, chain = np.zeros_like(raised), raised  # chain: joined to a raised pixel exactly k rows above
    for _ in range(reach):
        chain = np.concatenate([np.zeros_like(raised[:1]), chain[:-1] & joined])
        found |= chain
    return found


def evidence_info(evidence: SplatEvidence) -> dict:
    """The proxy's ``info["source_views"]``: what stood in for measured depth."""
    return {"kind": "the world's median depth from its source camera", "views": len(evidence.views),
            "size": [list(view.depth.shape[::-1]) for view in evidence.views],
            "walls": len(evidence.wall_planes)}


def source_walls(view: DepthView, width_share: float = 1.0) -> list[WallPlane]:
    """Walls (lyra_sim.physics.walls.WallPlane) in the depth view of an aligned world (z up, floor z = 0, metres),
    found the way the single-view completion finds them in an input depth (lyra_sim.single_view.completion's
    RANSAC of tall vertical planes, continued to room height when the image cuts them off), at least
    ``width_share`` of the completion's minimum width wide (LAYOUT_WALL_WIDTH for a laid-out view): the
    completion's record of them is what a file from elsewhere lacks."""
    from lyra_sim.single_view.completion import CompletionOptions, room_walls

    depth = np.asarray(view.depth, np.float64)
    valid = depth > 0
    if valid.sum() < MIN_SEEN:
        return []
    h, w = depth.shape
    K = view.K
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    cam_to_world = np.linalg.inv(view.world_to_cam)
    eye = cam_to_world[:3, 3]
    foot = np.array([eye[0], eye[1], 0.0])  # the completion's floor frame has the camera's foot at its origin
    ray_q = rays.reshape(-1, 3) @ cam_to_world[:3, :3].T
    q = (rays * depth[..., None]).reshape(-1, 3) @ cam_to_world[:3, :3].T + eye - foot
    q[~valid.ravel()] = (0.0, 0.0, -1e6)  # no surface: below every wall candidate
    median_depth = float(np.median(depth[valid]))
    cam_h = float(eye[2])
    if cam_h <= 0:
        return []
    band = max(0.02 * median_depth, 0.02 * cam_h)
    footprint = np.where(valid, depth, median_depth) / float(np.sqrt(K[0, 0] * K[1, 1]))
    kept, candidates = room_walls(q.reshape(h, w, 3), np.where(valid, depth, median_depth), ray_q, band, cam_h, True,
                                  median_depth, footprint, width_share * CompletionOptions.wall_min_width * cam_h)[:2]
    planes = []
    for wall, top in kept:
        if top == wall.top:  # not room-high: the wall's seen top, less the few Gaussians that stick out above it
            top = float(np.percentile(q[candidates[wall.inliers], 2], WALL_TOP_PERCENTILE))
        planes.append(WallPlane(wall.normal, float(wall.offset - wall.normal @ foot), float(top)))
    return planes


def _surface_points(view: DepthView) -> np.ndarray:
    """World points of the view's pixels with depth, at most CORE_SAMPLE of them (a fixed choice), less the
    backdrop's."""
    v, u = np.nonzero(view.depth > 0)
    if len(u) > CORE_SAMPLE:
        pick = np.random.default_rng(0).choice(len(u), CORE_SAMPLE, replace=False)
        v, u = v[pick], u[pick]
    z = view.depth[v, u].astype(np.float64)
    K = view.K
    cam = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0] * z, (v + 0.5 - K[1, 2]) / K[1, 1] * z, z], axis=1)
    cam_to_world = np.linalg.inv(view.world_to_cam)
    points = cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    # Pixels showing a far backdrop (a completion's sphere, a trained world's sky) are no part of the scene:
    # points beyond CORE_MARGIN of the central 2-98 % box go (the proxy fuses out to 1.5x the core's extent).
    lo, hi = np.quantile(points, [0.02, 0.98], axis=0)
    margin = CORE_MARGIN * (hi - lo)
    return points[np.all((points >= lo - margin) & (points <= hi + margin), axis=1)]
