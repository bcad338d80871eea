"""A real RGB-D frame with a real second view: Middlebury 2014 "Motorcycle" (scikit-image's bundled copy).

``skimage.data.stereo_motorcycle()`` gives the rectified left and right images (741x500, the benchmark's
default exposure downsampled 4x) and the left view's ground-truth disparity (NaN: no ground truth). Its
docstring gives the calibration of the downsampled pair: focal length f = 994.978 px, principal point
(311.193, 254.877) px, baseline B = 193.001 mm and doffs = 31.086 px, the right camera's principal point
minus the left's. Depth is Z = f B / (d + doffs) (metres: 1.9-5.1 m here); a left pixel at column u shows
in the right image at u - d. Pixels without ground truth get no depth (``generate_world`` fills them).

(a) Second view: ``generate_world(left, depth, K_left)`` rendered from the TRUE RIGHT camera (0.193 m along
the left camera's +x, principal point shifted by doffs) and compared with the right image: PSNR over all
pixels and over the pixels the left view also saw (a left pixel with ground truth lands there and is the
nearest one that does: not occluded), and SSIM (``skimage.metrics.structural_similarity``) as the perceptual
stand-in (LPIPS needs torchvision and pretrained AlexNet/VGG weights that this machine cannot download).
(b) The robot: ``prepare_scene`` on the frame (timed), the first frames of 16 seeded resets and a scripted
episode, measured with ``bench_robot_view``'s functions (observed share, holes share).

Variants, in one run: BEFORE = bench_robot_view's BEFORE (``CompletionOptions(backdrop=False, seams=False,
plane_texture="mirror")``, uniform starts); REV 85694c2 and REV 309fd29 = the main branch at those revisions
(second view only, in a subprocess on that revision's package extracted with ``git archive``); AFTER = this tree's
defaults. The second view also scores the band of disoccluded pixels beside the front tyre (``TYRE_BAND``), where a
faint light band showed. Contact sheets (truth / before / 85694c2 / 309fd29 / after at the right camera, and the
robot's frames) go to out/bench_real_frame/.

    pip install scikit-image          # or: pip install -e .[bench]
    python benchmarks/bench_real_frame.py                # writes its section of benchmarks/RESULTS.md
    python benchmarks/bench_real_frame.py --second-view  # part (a) only, print only

The docstring of ``stereo_motorcycle`` says ``img_left[10, 10 + disp[10, 10]]`` matches ``img_right[10, 10]``; the
images say the opposite (mean absolute colour difference 0.03 for u - d, 0.19 for u + d), as Middlebury defines it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench_real_frame"
REVISION = "85694c2"  # main before issue 24 round 4 (border texture, back layers behind ramped edges)
REVISION_ROUND5 = "309fd29"  # main before issue 24 round 5 (wider back layers, shaded undersides)
TYRE_BAND = (slice(280, 450), slice(600, 660))  # right-image rows and columns beside the front tyre: its
# disoccluded pixels there showed a faint light band (the far backdrop through seams between back layers)
LIGHT = 0.04  # a band pixel is light where the render is this much brighter than the right image
FOCAL, CX, CY, DOFFS, BASELINE_M = 994.978, 311.193, 254.877, 31.086, 0.193001


@dataclass
class StereoFrame:
    left: np.ndarray  # (H,W,3) float32 in [0,1]
    right: np.ndarray
    depth: np.ndarray  # (H,W) metres of the left view, 0 where the disparity has no ground truth
    disparity: np.ndarray  # (H,W) left view's disparity in pixels, NaN where unknown
    K_left: np.ndarray  # 3x3, this package's pixel convention (pixel u's centre at u + 0.5)
    K_right: np.ndarray
    baseline: float  # metres, along the left camera's +x


def motorcycle() -> StereoFrame:
    """The Middlebury "Motorcycle" pair from scikit-image, with depth and both cameras (module docstring)."""
    try:
        from skimage.data import stereo_motorcycle
    except ImportError:
        sys.exit("bench_real_frame needs scikit-image (it bundles the stereo pair): pip install scikit-image "
                 "(or pip install -e .[bench])")
    left, right, disparity = stereo_motorcycle()
    disparity = np.where(np.isfinite(disparity) & (disparity > 0), disparity, np.nan).astype(np.float64)
    depth = np.where(np.isfinite(disparity), FOCAL * BASELINE_M / (disparity + DOFFS), 0.0).astype(np.float32)
    # Middlebury's principal point counts pixel centres at integers; this package puts pixel u's centre at u + 0.5.
    K_left = np.array([[FOCAL, 0, CX + 0.5], [0, FOCAL, CY + 0.5], [0, 0, 1.0]])
    K_right = K_left.copy()
    K_right[0, 2] += DOFFS
    return StereoFrame(left.astype(np.float32) / 255, right.astype(np.float32) / 255, depth, disparity, K_left,
                       K_right, BASELINE_M)


def covisible(disparity: np.ndarray) -> np.ndarray:
    """Right-image pixels (H,W bool) that the left view also saw: a left pixel with ground truth lands there
    (column u - d, both neighbouring columns) and is the nearest (largest disparity) of those that do, within
    1 px of disparity."""
    h, w = disparity.shape
    v, u = np.nonzero(np.isfinite(disparity))
    d = disparity[v, u]
    x = u - d
    best = np.full((h, w), -np.inf)
    for column in (np.floor(x), np.ceil(x)):
        c = column.astype(np.int64)
        ok = (c >= 0) & (c < w)
        np.maximum.at(best, (v[ok], c[ok]), d[ok])
    hit = np.zeros((h, w), bool)
    for column in (np.floor(x), np.ceil(x)):
        c = column.astype(np.int64)
        ok = (c >= 0) & (c < w)
        front = ok.copy()
        front[ok] = d[ok] >= best[v[ok], c[ok]] - 1.0
        hit[v[front], c[front]] = True
    return hit


def right_camera(frame: StereoFrame):
    from lyra_sim.camera import Camera

    world_to_cam = torch.eye(4)
    world_to_cam[0, 3] = -frame.baseline  # the world is the left camera's OpenCV frame
    h, w = frame.depth.shape
    return Camera(torch.from_numpy(frame.K_right).float(), world_to_cam, w, h)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    err = (a - b) ** 2
    mse = float(err[mask].mean() if mask is not None else err.mean())
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def second_view(completion: dict | None) -> dict:
    """Generate the world from the left frame with ``completion`` (CompletionOptions fields; None: defaults) and
    score its render at the true right camera; the render itself under "image"."""
    from skimage.metrics import structural_similarity

    from lyra_sim.generate import generate_world
    from lyra_sim.rendering import render
    from lyra_sim.single_view.completion import CompletionOptions

    frame = motorcycle()
    options = {} if completion is None else {"completion": CompletionOptions(**completion)}
    t0 = time.perf_counter()
    world = generate_world(frame.left, depth=frame.depth, intrinsics=frame.K_left, **options)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        result = render(world, right_camera(frame), background=(1.0, 1.0, 1.0))
    image = result.rgb.numpy()
    seen = covisible(frame.disparity)
    # Out of the left view: the rendered surface projects beyond the left image's right edge (u_L = u_R + d).
    u_left = np.arange(image.shape[1])[None, :] + 0.5 + FOCAL * frame.baseline / np.maximum(
        result.depth.numpy().reshape(seen.shape), 1e-3) - DOFFS
    outside = ~seen & (u_left >= image.shape[1])
    error = ((image - frame.right) ** 2).mean(axis=-1)
    band = np.zeros_like(seen)
    band[TYRE_BAND] = True
    band &= ~seen
    return {"psnr": psnr(image, frame.right), "psnr_covisible": psnr(image, frame.right, seen),
            "psnr_disoccluded": psnr(image, frame.right, ~seen), "covisible_share": float(seen.mean()),
            "psnr_behind": psnr(image, frame.right, ~seen & ~outside),
            "psnr_outside": psnr(image, frame.right, outside),
            "outside_share": float(outside.mean()),
            "mse_shares": [float(error[m].sum() / error.sum()) for m in (seen, ~seen & ~outside, outside)],
            "ssim": float(structural_similarity(image, frame.right, channel_axis=2, data_range=1.0)),
            "psnr_band": psnr(image, frame.right, band),
            "band_light": float(((image - frame.right).mean(axis=-1)[band] > LIGHT).mean()),
            "gaussians": len(world), "generate_s": seconds, "image": image}


VARIANTS = {  # name: (CompletionOptions fields or None for the defaults, start sampling, revision or None)
    "before": ({"backdrop": False, "seams": False, "plane_texture": "mirror"}, "uniform", None),
    f"rev {REVISION}": (None, None, REVISION),
    f"rev {REVISION_ROUND5}": (None, None, REVISION_ROUND5),
    "after": (None, "observed", None),
}


def revision_tree(revision: str) -> Path:
    """That revision's ``lyra_sim`` package, extracted with ``git archive`` (once) under out/."""
    target = OUT / f"rev_{revision}"
    if not (target / "lyra_sim").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "lyra_sim"], check=True,
                                 capture_output=True).stdout
        tmp = target / "lyra_sim.tar"
        tmp.write_bytes(archive)
        with tarfile.open(tmp) as tar:
            tar.extractall(target, filter="data")
        tmp.unlink()
    return target


def second_view_at(revision: str) -> dict:
    """``second_view`` with the defaults of ``revision``'s package, in a subprocess (its image via a .npy file)."""
    image_path = OUT / f"second_view_{revision}.npy"
    env = {**os.environ, "PYTHONPATH": str(revision_tree(revision))}
    done = subprocess.run([sys.executable, __file__, "--second-view-json", str(image_path)], env=env, check=True,
                          capture_output=True, text=True)
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    return {**stats, "image": np.load(image_path)}


def robot_view(frame: StereoFrame, completion: dict | None, sampling: str, seeds: int, tag: str) -> dict:
    """``prepare_scene`` on the frame (timed) and ``bench_robot_view.measure``'s first frames and episode."""
    import bench_robot_view

    from lyra_sim.envs.scene import prepare_scene
    from lyra_sim.single_view.completion import CompletionOptions

    options = {} if completion is None else {"completion": CompletionOptions(**completion)}
    t0 = time.perf_counter()
    scene = prepare_scene((frame.left, frame.depth), intrinsics=frame.K_left, generate_options=options)
    seconds = time.perf_counter() - t0
    bench_robot_view.OUT = OUT  # its contact sheets go beside ours
    return {"prepare_s": seconds, **bench_robot_view.measure("real frame", scene, sampling, seeds, tag)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--second-view", action="store_true", help="part (a) only; print, write nothing")
    parser.add_argument("--second-view-json", metavar="NPY", help=argparse.SUPPRESS)  # second_view_at's subprocess
    args = parser.parse_args()
    if args.second_view_json:
        stats = second_view(None)
        np.save(args.second_view_json, stats.pop("image"))
        print(json.dumps(stats))
        return
    from lyra_sim.views.media import save_png

    OUT.mkdir(parents=True, exist_ok=True)
    frame = motorcycle()
    views = {}
    for tag, (completion, _, revision) in VARIANTS.items():
        views[tag] = second_view_at(revision) if revision else second_view(completion)
        s = views[tag]
        print(f"second view {tag:13s} PSNR {s['psnr']:.2f} dB (co-visible {s['psnr_covisible']:.2f}, disoccluded "
              f"{s['psnr_disoccluded']:.2f}) SSIM {s['ssim']:.4f}  band beside the front tyre {s['psnr_band']:.2f} dB, "
              f"{s['band_light']:.1%} light  {s['gaussians']:,} Gaussians, generate "
              f"{s['generate_s']:.1f} s", flush=True)
    sheet = np.concatenate([frame.right] + [views[tag]["image"] for tag in VARIANTS], axis=1)
    print(f"wrote {save_png(sheet, OUT / 'second_view_truth_before_revs_after.png')}")
    if args.second_view:
        return
    robots = {}
    for tag, (completion, sampling, revision) in VARIANTS.items():
        if revision is None:
            robots[tag] = r = robot_view(frame, completion, sampling, 16, tag)
            import bench_robot_view

            print(f"robot {tag:7s} prepare {r['prepare_s']:.0f} s  {bench_robot_view.summary(r)}", flush=True)
    write_results(frame, views, robots)


def write_results(frame: StereoFrame, views: dict, robots: dict) -> None:
    from bench_robot_view import EPISODE_STEPS
    from results import write_section

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    share = views["after"]["covisible_share"]
    view_rows = ["| variant | PSNR all pixels | PSNR co-visible | PSNR disoccluded (behind objects / beyond the left "
                 "view) | share of the squared error: co-visible / behind / beyond | SSIM | band beside the front "
                 "tyre: PSNR, light pixels | Gaussians | generate |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for tag, s in views.items():
        shares = " / ".join(f"{x:.2f}" for x in s["mse_shares"])
        view_rows.append(f"| {tag} | {s['psnr']:.2f} dB | {s['psnr_covisible']:.2f} dB | {s['psnr_disoccluded']:.2f} "
                         f"dB ({s['psnr_behind']:.2f} / {s['psnr_outside']:.2f} dB) | {shares} | {s['ssim']:.4f} | "
                         f"{s.get('psnr_band', float('nan')):.2f} dB, {s.get('band_light', float('nan')):.1%} | "
                         f"{s['gaussians']:,} | {s['generate_s']:.1f} s |")
    robot_rows = ["| variant | prepare_scene | first frames: observed share (underlay counted invented) | median start "
                  "to capture camera's foot | first frames: holes (max) | scripted episode: observed share | episode: "
                  "holes mean (max, frames > 20 %) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for tag, r in robots.items():
        robot_rows.append(f"| {tag} | {r['prepare_s']:.0f} s | {r['first_observed']:.3f} "
                          f"({r['first_observed_strict']:.3f}) | {r['start_distance']:.2f} m | {r['first_holes']:.4f} "
                          f"({r['first_holes_max']:.4f}) | {r['episode_observed']:.3f} | {r['episode_holes']:.4f} "
                          f"({r['episode_holes_max']:.4f}, {r['episode_frames_over_20']}/{r['episode_frames']}) |")
    h, w = frame.depth.shape
    body = f"""Measured {datetime.date.today()} on {platform.machine()}, {torch.get_num_threads()} torch threads, load
average {load} (a 2-core machine shared with other jobs: times are inflated), by
`python benchmarks/bench_real_frame.py`, all variants in one run. Frame: Middlebury 2014 "Motorcycle" as bundled in
scikit-image (`skimage.data.stereo_motorcycle()`, {w}x{h}, the left view's ground-truth disparity: depth
f B / (d + doffs), 1.9-5.1 m, {(frame.depth > 0).mean():.1%} of the pixels with ground truth; the rest is filled by
`generate_world`). BEFORE: `CompletionOptions(backdrop=False, seams=False, plane_texture="mirror")` and uniform
starts (bench_robot_view's BEFORE) on this tree; REV {REVISION} and REV {REVISION_ROUND5}: the main branch at those
revisions with their defaults (second view only, each package extracted by `git archive` and run in a subprocess);
AFTER: this tree's defaults.

Second view: the world rendered from the TRUE RIGHT camera (0.193 m to the right, principal point shifted by
doffs) against the right image. Co-visible: the {share:.1%} of the right image's pixels that a left pixel with
ground truth lands on unoccluded; disoccluded: the rest, split into the pixels behind the motorcycle's edges as seen
from the left and the strip beyond the left image's right edge ({views['after']['outside_share']:.1%} of the pixels
in AFTER: its rendered surface projects outside the left image). The band beside the front tyre: the disoccluded
pixels of rows {TYRE_BAND[0].start}-{TYRE_BAND[0].stop}, columns {TYRE_BAND[1].start}-{TYRE_BAND[1].stop} of the
right image, where a faint light band showed; light pixels: the render over {LIGHT} brighter than the right image
(mean over the colour channels). SSIM (scikit-image, 7x7 windows) stands in
for LPIPS, which needs torchvision and pretrained AlexNet/VGG weights this machine cannot download. Contact
sheet (truth / before / rev {REVISION} / rev {REVISION_ROUND5} / after):
`out/bench_real_frame/second_view_truth_before_revs_after.png`.

{chr(10).join(view_rows)}

The robot (Navigate-v0 on `prepare_scene((left, depth), intrinsics=K)`, measured by `bench_robot_view.measure`):
first frames of 16 seeded resets at 96x72, the demo's scripted controller for {EPISODE_STEPS} steps at 160x120
from seed 0; observed share and holes as in "What the robot sees". Contact sheets: `out/bench_real_frame/`.

{chr(10).join(robot_rows)}

Targets (issue 24): the second view >= 22 dB (19.6 dB reported, 21.35 dB at 85694c2); first frames >= 0.70
observed; no holes."""
    print(f"wrote {write_section('A real RGB-D frame with a real second view (Middlebury Motorcycle)', body)}")


if __name__ == "__main__":
    main()
