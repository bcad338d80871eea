"""Camera poses of an RGB-D sequence without a tracker: open3d RGB-D odometry plus a pose graph.

As open3d's reconstruction system does it: colour + depth odometry (hybrid term) from each frame to
the next gives the chain of relative motions; keyframes revisiting a place are registered again
(loop closures, initialised from the chain's estimate); a pose graph with line-process pruning of
bad loops spreads the drift. Frame pairs whose odometry fails or finds too few correspondences
stop the estimate with ``TrackingLostError`` rather than fusing a smeared world.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np
import open3d as o3d
from tqdm.auto import tqdm

from lyra_sim.errors import LyraSimError
from lyra_sim.inputs.sequence import RGBDSequence

log = logging.getLogger(__name__)
reg = o3d.pipelines.registration
ODOMETRY_ITERATIONS = (20, 10, 5)  # Gauss-Newton iterations per pyramid level, coarse to fine (open3d's default)


class TrackingLostError(LyraSimError):
    """Frame-to-frame odometry failed: the estimated poses would smear the world."""


@dataclass
class OdometryReport:
    """How well the poses are supported: odometry overlap per step, loop closures, pose-graph residuals."""

    overlap: list[float]  # fraction of pixels with a correspondence, per consecutive pair
    pairs_tried: int = 0
    pairs_kept: int = 0
    residual_trans_m: list[float] = field(default_factory=list)  # per graph edge, after optimisation
    residual_rot_deg: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        def stats(v):
            return {"mean": round(float(np.mean(v)), 5), "max": round(float(np.max(v)), 5)} if v else None

        return {"pairs": len(self.overlap), "overlap_min": round(min(self.overlap), 3) if self.overlap else None,
                "pairs_tried": self.pairs_tried, "pairs_kept": self.pairs_kept,
                "residual_trans_m": stats(self.residual_trans_m),
                "residual_rot_deg": stats(self.residual_rot_deg)}


def _o3d_images(seq: RGBDSequence, depth_max: float, factor: int) -> list[o3d.geometry.RGBDImage]:
    """The frames as open3d RGB-D images, ``factor`` times smaller (colour box-filtered, depth subsampled)."""
    out = []
    h, w = seq.frames[0].depth.shape
    hh, ww = h // factor * factor, w // factor * factor
    for f in seq.frames:
        rgb = f.rgb[:hh, :ww].reshape(hh // factor, factor, ww // factor, factor, 3).mean(axis=(1, 3))
        depth = f.depth[factor // 2 : hh : factor, factor // 2 : ww : factor]
        colour = o3d.geometry.Image(np.ascontiguousarray((rgb * 255).round().astype(np.uint8)))
        depth = o3d.geometry.Image(np.ascontiguousarray(depth.astype(np.float32)))
        out.append(o3d.geometry.RGBDImage.create_from_color_and_depth(
            colour, depth, depth_scale=1.0, depth_trunc=depth_max, convert_rgb_to_intensity=True))
    return out


def _o3d_intrinsic(K: np.ndarray, width: int, height: int) -> o3d.camera.PinholeCameraIntrinsic:
    # open3d puts pixel centres at integer coordinates; the package's K at +0.5 (see surfels.unproject_depth).
    return o3d.camera.PinholeCameraIntrinsic(width, height, K[0, 0], K[1, 1], K[0, 2] - 0.5, K[1, 2] - 0.5)


def _features(rgb: np.ndarray, orb) -> tuple:
    gray = cv2.cvtColor((rgb * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return orb.detectAndCompute(gray, None)


def feature_motion(src, dst, src_depth: np.ndarray, K: np.ndarray, min_inliers: int = 20) -> np.ndarray | None:
    """Rigid motion (source camera -> target camera) from ORB matches: source 3D points, target pixels, PnP RANSAC.

    A coarse guess that survives large motions, which the dense odometry then refines (as open3d's
    reconstruction system initialises its loop closures); None when too few matches agree.
    """
    (kp_s, des_s), (kp_t, des_t) = src, dst
    if des_s is None or des_t is None or len(kp_s) < min_inliers or len(kp_t) < min_inliers:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(des_s, des_t)
    if len(matches) < min_inliers:
        return None
    uv_s = np.array([kp_s[m.queryIdx].pt for m in matches])
    uv_t = np.array([kp_t[m.trainIdx].pt for m in matches])
    h, w = src_depth.shape
    cols = np.clip(np.round(uv_s[:, 0]).astype(int), 0, w - 1)
    rows = np.clip(np.round(uv_s[:, 1]).astype(int), 0, h - 1)
    z = src_depth[rows, cols]
    ok = z > 0
    if ok.sum() < min_inliers:
        return None
    k_cv = K.copy()
    k_cv[:2, 2] -= 0.5  # OpenCV keypoints put pixel centres at integer coordinates
    xyz = np.stack([(uv_s[ok, 0] - k_cv[0, 2]) / k_cv[0, 0] * z[ok], (uv_s[ok, 1] - k_cv[1, 2]) / k_cv[1, 1] * z[ok],
                    z[ok]], axis=1)
    found, rvec, tvec, inliers = cv2.solvePnPRansac(xyz, uv_t[ok], k_cv, None, iterationsCount=200,
                                                    reprojectionError=3.0, flags=cv2.SOLVEPNP_EPNP)
    if not found or inliers is None or len(inliers) < min_inliers:
        return None
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rvec)[0]
    T[:3, 3] = tvec[:, 0]
    return T


def _rotation_deg(r: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))))


def estimate_poses(
    seq: RGBDSequence,
    depth_max: float = 6.0,
    depth_diff_max: float = 0.07,
    min_overlap: float = 0.15,
    keyframe_every: int = 5,
    loop_radius: float = 1.0,
    loop_angle_deg: float = 45.0,
    odometry_width: int = 320,
    progress: bool = True,
) -> tuple[np.ndarray, OdometryReport]:
    """Camera-to-world poses (N,4,4) with frame 0 at the identity, and the residual report.

    Dense odometry runs on frames shrunk by an integer factor to about ``odometry_width`` pixels
    wide (its image pyramid refines the finest level least; features are found at full size).
    Keyframes (every ``keyframe_every``-th frame) are also registered to the next keyframe and
    to keyframes that revisit a place (within ``loop_radius`` m and ``loop_angle_deg``).

    Raises ``TrackingLostError`` naming the frames when consecutive frames overlap in less than
    ``min_overlap`` of their pixels or the odometry does not converge.
    """
    if len(seq) < 2:
        return np.eye(4)[None], OdometryReport([])
    h, w = seq.frames[0].depth.shape
    factor = max(1, w // odometry_width)
    K_small = np.diag([1.0 / factor, 1.0 / factor, 1.0]) @ seq.K  # exact for pixel centres at +0.5
    intrinsic = _o3d_intrinsic(K_small, w // factor, h // factor)
    option = o3d.pipelines.odometry.OdometryOption(
        o3d.utility.IntVector(ODOMETRY_ITERATIONS), depth_diff_max=depth_diff_max, depth_min=0.1, depth_max=depth_max
    )
    jacobian = o3d.pipelines.odometry.RGBDOdometryJacobianFromHybridTerm()
    images = _o3d_images(seq, depth_max, factor)
    h, w = h // factor, w // factor
    graph = reg.PoseGraph()
    graph.nodes.append(reg.PoseGraphNode(np.eye(4)))
    poses = [np.eye(4)]
    report = OdometryReport([])
    orb = cv2.ORB_create(1000)
    features = [_features(f.rgb, orb) for f in seq.frames]
    motion = np.eye(4)  # constant-velocity guess when features do not give one
    for i in tqdm(range(len(seq) - 1), desc="odometry", unit="frame", disable=not progress):
        guess = feature_motion(features[i], features[i + 1], seq.frames[i].depth, seq.K)
        ok, trans, info = o3d.pipelines.odometry.compute_rgbd_odometry(
            images[i], images[i + 1], intrinsic, motion if guess is None else guess, jacobian, option)
        if not ok:  # retry from rest: a sudden stop defeats the guesses
            ok, trans, info = o3d.pipelines.odometry.compute_rgbd_odometry(
                images[i], images[i + 1], intrinsic, np.eye(4), jacobian, option)
        overlap = float(info[5, 5]) / (w * h)
        if not ok or overlap < min_overlap:
            a, b = seq.frames[i], seq.frames[i + 1]
            raise TrackingLostError(
                f"{seq.source}: tracking lost between frames {a.name} (t={a.timestamp:.3f} s) and {b.name} "
                f"(t={b.timestamp:.3f} s): {'odometry did not converge' if not ok else f'only {overlap:.0%} overlap'}"
                "; move the camera more slowly, keep textured surfaces in view, or give poses (--poses)")
        report.overlap.append(overlap)
        motion = trans
        poses.append(poses[-1] @ np.linalg.inv(trans))
        graph.nodes.append(reg.PoseGraphNode(poses[-1]))
        graph.edges.append(reg.PoseGraphEdge(i, i + 1, trans, info, uncertain=False))
    _add_loop_closures(seq, images, features, intrinsic, jacobian, option, poses, graph, report, keyframe_every,
                       loop_radius, loop_angle_deg, progress)
    if any(e.uncertain for e in graph.edges):
        reg.global_optimization(
            graph,
            reg.GlobalOptimizationLevenbergMarquardt(),
            reg.GlobalOptimizationConvergenceCriteria(),
            reg.GlobalOptimizationOption(
                max_correspondence_distance=depth_diff_max,
                edge_prune_threshold=0.25,
                preference_loop_closure=0.1,
                reference_node=0,
            ),
        )
    result = np.stack([np.asarray(n.pose) for n in graph.nodes])
    result = np.linalg.inv(result[0]) @ result  # frame 0 at the identity
    loops = [e for e in graph.edges if e.uncertain]
    report.pairs_kept = sum(1 for e in loops if e.confidence > 0.5)
    for e in graph.edges:
        if e.uncertain and e.confidence <= 0.5:
            continue
        predicted = np.linalg.inv(result[e.target_node_id]) @ result[e.source_node_id]
        err = np.linalg.inv(np.asarray(e.transformation)) @ predicted
        report.residual_trans_m.append(float(np.linalg.norm(err[:3, 3])))
        report.residual_rot_deg.append(_rotation_deg(err[:3, :3]))
    log.info("odometry: %s", report.summary())
    return result, report


def _add_loop_closures(seq, images, features, intrinsic, jacobian, option, poses, graph, report, keyframe_every,
                       loop_radius, loop_angle_deg, progress) -> None:
    """Register each keyframe to the next one and to keyframes that revisit its place (uncertain pose-graph edges)."""
    keys = list(range(0, len(seq), max(keyframe_every, 1)))
    candidates = []
    for a_idx, i in enumerate(keys):
        for j in keys[a_idx + 1 :]:
            if j == i + keyframe_every:  # the next keyframe: a second path around the frame-to-frame chain
                candidates.append((i, j))
                continue
            if j - i < 3 * keyframe_every:
                continue
            dist = np.linalg.norm(poses[i][:3, 3] - poses[j][:3, 3])
            angle = np.degrees(np.arccos(np.clip(poses[i][:3, 2] @ poses[j][:3, 2], -1.0, 1.0)))
            if dist < loop_radius and angle < loop_angle_deg:
                candidates.append((i, j))
    h, w = np.asarray(images[0].depth).shape
    for i, j in tqdm(candidates, desc="keyframe pairs", unit="pair", disable=not progress or not candidates):
        chain = np.linalg.inv(poses[j]) @ poses[i]
        guess = feature_motion(features[i], features[j], seq.frames[i].depth, seq.K)
        init = chain if guess is None else guess
        ok, trans, info = o3d.pipelines.odometry.compute_rgbd_odometry(images[i], images[j], intrinsic, init, jacobian,
                                                                       option)
        report.pairs_tried += 1
        correction = np.linalg.inv(chain) @ trans  # how far the loop pulls the chain's drift
        if ok and info[5, 5] / (w * h) > 0.3 and np.linalg.norm(correction[:3, 3]) < 0.3:
            graph.edges.append(reg.PoseGraphEdge(i, j, trans, info, uncertain=True))
