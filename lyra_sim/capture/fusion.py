"""Fusing the frames of a posed RGB-D sequence into one set of surfels.

Geometry comes from open3d's TSDF voxel block grid (weighted signed distances average the sensor
noise of every frame; its zero crossing gives one point, with a normal, per surface element).
Appearance comes from the frames themselves: every surface point is projected into every frame,
and where the frame's depth agrees (the point is visible there) the frame observes its colour.
The surfel keeps the best view's colour (closest, most frontal), or a degree-1 spherical-harmonics
fit to all views' colours (weighted least squares) so view-dependent shine survives. Frames whose
depth lies clearly *behind* a point saw through it: points seen through repeatedly were occupied
only for a while (a moving object) and are reported as such.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from lyra_sim.geometry.tsdf import TRUNCATION_VOXELS, DepthView, fuse_views, surface_points
from lyra_sim.inputs.sequence import RGBDSequence
from lyra_sim.sh import C1, sh_basis
from lyra_sim.single_view import surfels
from lyra_sim.single_view.lift import unreliable_edges
from lyra_sim.world import GaussianWorld

SURFEL_SIGMA = 0.7  # in-plane std in voxel sizes: neighbouring TSDF surface points (one voxel apart) blend
SURFEL_THICKNESS = 0.1  # std along the normal, relative to the in-plane std
TSDF_TRUNCATION = TRUNCATION_VOXELS  # signed distances are truncated at this many voxels
SH_RIDGE = 0.01  # pull of the degree-1 SH terms to zero: views must spread over more than ~6 degrees to fit them


def sensor_tolerance(z: np.ndarray, voxel_size: float) -> np.ndarray:
    """Depth agreement tolerance (m) at range ``z``: a structured-light sensor's noise grows with z^2."""
    return np.maximum(2.0 * voxel_size, 0.01 + 0.01 * z**2)


def clean_depth(depth: np.ndarray) -> np.ndarray:
    """Depth with unreliable occlusion-edge pixels (flying pixels) set to 0."""
    return np.where(unreliable_edges(depth, margin=1), 0.0, depth).astype(np.float32)


def clean_sequence(seq: RGBDSequence) -> RGBDSequence:
    """The sequence with ``clean_depth`` applied to every frame (what fusion and observation expect)."""
    frames = [dataclasses.replace(f, depth=clean_depth(f.depth)) for f in seq.frames]
    return dataclasses.replace(seq, frames=frames)


def nearest_depth(depth: np.ndarray, size: int = 5) -> np.ndarray:
    """The smallest valid depth in each ``size`` x ``size`` neighbourhood (inf where none)."""
    valid = np.where(depth > 0, depth, np.inf).astype(np.float32)
    return cv2.erode(valid, np.ones((size, size), np.uint8), borderType=cv2.BORDER_REPLICATE)


def integrate_tsdf(
    seq: RGBDSequence,
    cam_to_ref: np.ndarray,
    voxel_size: float,
    depth_max: float,
    masks: list[np.ndarray] | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Surface points (G,3) and unit normals (G,3) of the TSDF fused from every frame (reference frame).

    Expects cleaned depth (``clean_sequence``). ``masks`` (per frame, True = use the pixel) leave out pixels
    such as moving objects.
    """
    views = []
    for i, frame in enumerate(seq.frames):
        depth = frame.depth if masks is None else np.where(masks[i], frame.depth, 0.0).astype(np.float32)
        views.append(DepthView(depth, seq.K, np.linalg.inv(cam_to_ref[i])))
    grid = fuse_views(views, voxel_size, depth_max, TSDF_TRUNCATION, progress=progress)
    return surface_points(grid)


@dataclass
class Observations:
    """What the frames saw of each surface point."""

    best_rgb: np.ndarray  # (G,3) colour of the best view
    best_score: np.ndarray  # (G,) frontality / distance of the best view (0 = never seen)
    best_frame: np.ndarray  # (G,) index of the best view (-1 = never seen)
    best_footprint: np.ndarray  # (G,) pixel footprint (m) in the best view
    seen: np.ndarray  # (G,) frames in which the point is visible
    seen_through: np.ndarray  # (G,) frames whose depth lies clearly behind the point
    ata: np.ndarray | None  # (G,4,4) weighted normal equations of the degree-1 SH fit
    atc: np.ndarray | None  # (G,4,3)
    weight: np.ndarray  # (G,) total weight of the colour observations


def project(points: np.ndarray, cam_to_ref: np.ndarray, K: np.ndarray, shape: tuple[int, int]):
    """Camera-frame points, pixel indices (rows, cols) and an in-image mask for ``points`` in the reference frame."""
    world_to_cam = np.linalg.inv(cam_to_ref).astype(points.dtype)
    pc = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * pc[:, 0] / z + K[0, 2]
        v = K[1, 1] * pc[:, 1] / z + K[1, 2]
    h, w = shape
    inside = (z > 0.05) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    cols = np.where(inside, u, 0).astype(np.int64)
    rows = np.where(inside, v, 0).astype(np.int64)
    return pc, rows, cols, inside


def observe(
    points: np.ndarray,
    normals: np.ndarray,
    seq: RGBDSequence,
    cam_to_ref: np.ndarray,
    voxel_size: float,
    sh_degree: int = 0,
    progress: bool = True,
) -> Observations:
    """Project the surface points into every frame: visibility, best view, see-through counts, SH normal equations.

    Expects cleaned depth (``clean_sequence``).
    """
    g = len(points)
    obs = Observations(np.zeros((g, 3)), np.zeros(g), np.full(g, -1), np.zeros(g), np.zeros(g, np.int32),
                       np.zeros(g, np.int32), np.zeros((g, 4, 4)) if sh_degree else None,
                       np.zeros((g, 4, 3)) if sh_degree else None, np.zeros(g))
    h, w = seq.frames[0].depth.shape
    focal = float(np.sqrt(seq.K[0, 0] * seq.K[1, 1]))
    for i, frame in enumerate(tqdm(seq.frames, desc="colour", unit="frame", disable=not progress)):
        pc, rows, cols, inside = project(points, cam_to_ref[i], seq.K, (h, w))
        idx = np.flatnonzero(inside)
        z = pc[idx, 2]
        measured = frame.depth[rows[idx], cols[idx]]
        # Seeing through needs the whole neighbourhood behind the point: a point on a silhouette projects
        # within a pixel or two of the background behind it.
        nearest = nearest_depth(frame.depth)[rows[idx], cols[idx]]
        tol = sensor_tolerance(z, voxel_size)
        through = np.isfinite(nearest) & (nearest > z + 2.5 * tol)
        obs.seen_through[idx[through]] += 1
        ray = pc[idx] / np.linalg.norm(pc[idx], axis=1, keepdims=True)
        n_cam = normals[idx] @ cam_to_ref[i][:3, :3]  # normals in camera axes (rotation inverse = transpose)
        cos = -(n_cam * ray).sum(axis=1)
        visible = (measured > 0) & (np.abs(measured - z) < tol) & (cos > 0.05)
        idx, z, cos, ray = idx[visible], z[visible], cos[visible], ray[visible]
        obs.seen[idx] += 1
        colour = frame.rgb[rows[idx], cols[idx]].astype(np.float64)
        score = cos / z
        better = score > obs.best_score[idx]
        b = idx[better]
        obs.best_score[b], obs.best_rgb[b], obs.best_frame[b] = score[better], colour[better], i
        obs.best_footprint[b] = z[better] / focal
        weight = cos / z**2
        obs.weight[idx] += weight
        if sh_degree:
            dirs_ref = ray @ cam_to_ref[i][:3, :3].T  # viewing direction (camera -> point) in the reference frame
            basis = sh_basis(torch.from_numpy(dirs_ref), 1).numpy()  # (M,4)
            obs.ata[idx] += weight[:, None, None] * basis[:, :, None] * basis[:, None, :]
            obs.atc[idx] += weight[:, None, None] * basis[:, :, None] * (colour - 0.5)[:, None, :]
    return obs


def fit_sh(obs: Observations) -> np.ndarray:
    """Degree-1 SH coefficients (G,4,3) by ridge-regularised weighted least squares over the views' colours.

    Points seen from one direction only keep the DC term (the ridge holds the others at zero), so the
    fit never invents shine it has no views for.
    """
    ridge = np.zeros((len(obs.weight), 4, 4))
    ridge[:, [1, 2, 3], [1, 2, 3]] = SH_RIDGE * C1**2 * np.maximum(obs.weight, 1e-12)[:, None]
    ridge[:, 0, 0] = 1e-9
    return np.linalg.solve(obs.ata + ridge, obs.atc)


def surfel_world(points: np.ndarray, normals: np.ndarray, obs: Observations, voxel_size: float,
                 sh_degree: int = 0, opacity: float = 0.95) -> GaussianWorld:
    """One flat Gaussian per observed surface point (OpenCV frame of the reference camera, metric), coloured by
    its best view (``sh_degree`` 1: view-dependent colour fitted from all its views)."""
    keep = obs.seen > 0
    sigma = SURFEL_SIGMA * np.maximum(voxel_size, obs.best_footprint[keep])
    scales = np.stack([sigma, sigma, SURFEL_THICKNESS * sigma], axis=1)
    world = surfels.surfel_world(points[keep], normals[keep], scales, obs.best_rgb[keep], opacity, observed=True,
                                 metric=True)
    if sh_degree:
        world = dataclasses.replace(world, sh=torch.from_numpy(fit_sh(obs)[keep]).float())
    return world
