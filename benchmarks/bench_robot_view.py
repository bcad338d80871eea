"""What the robot sees: the observed share and the holes of Navigate-v0's camera frames, before and after.

Two worlds, each prepared twice in the same run: the bundled tabletop RGB-D example and a synthetic RGB-D
frame (the first frame of ``lyra_sim.synthetic.captures``' furnished room, 320x240, sensor noise).
BEFORE = completion without the far backdrop and the floor/wall seams (``CompletionOptions(backdrop=False,
seams=False, plane_texture="mirror")``) and episodes started uniformly (``start_sampling="uniform"``), as before
issue 24; AFTER = today's defaults (backdrop, seams, starts where the scored views are observed and show observed
objects, ``min_objects`` 0.05); OBSERVED ONLY = AFTER's scene with ``min_objects=0``, the start rule before this
round (the observed share alone). ``--tradeoff`` sweeps ``min_objects`` on both worlds and on bench_real_frame's
Middlebury frame (scikit-image needed) and writes its own section.

Per world and variant: the first frames of 16 seeded episodes (96x72, the env's default camera) and a scripted
episode (the demo's controller, 60 steps, 160x120): observed share = pixels with alpha > 0.5 more than half
of which comes from Gaussians flagged observed (also with the seen-plane underlay counted invented); object share
= the same for observed Gaussians that are not floor or wall; median depth of the covered pixels; holes =
pixels with alpha <= 0.5 (white in the robot's image); and every scored view (the scored cells x 16 headings
rendered at prepare time, 32x24): the share of views with alpha > 0.5 on >= 99 % of their pixels. Contact
sheets (true colour over invented-tinted, background green) go to out/bench_robot_view/.

    python benchmarks/bench_robot_view.py            # writes its section of benchmarks/RESULTS.md
    python benchmarks/bench_robot_view.py --quick    # the tabletop only, 8 seeds, print only
    python benchmarks/bench_robot_view.py --tradeoff # min_objects swept; writes its own section
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from results import write_section

from lyra_sim.camera import Camera
from lyra_sim.demo import EXAMPLE_DIR, scripted_action
from lyra_sim.envs.navigate import NavigateEnv
from lyra_sim.envs.scene import REFINED_CELLS, observed_shares, prepare_scene, view_shares
from lyra_sim.inputs.images import load_depth, load_intrinsics, load_rgb
from lyra_sim.rendering import render
from lyra_sim.single_view.completion import CompletionOptions, tint_completed
from lyra_sim.views.media import save_png
from lyra_sim.world import first_keyframe

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench_robot_view"
EPISODE_STEPS = 60
FIRST_FRAME_SIZE = (96, 72)
EPISODE_SIZE = (160, 120)
VARIANTS = {  # (generate options or None for AFTER's scene, start sampling, NavigateEnv options)
    "before": ({"completion": CompletionOptions(backdrop=False, seams=False, plane_texture="mirror")}, "uniform", {}),
    "after": ({}, "observed", {}),
    "observed only": (None, "observed", {"min_objects": 0.0}),
}
TRADEOFF_MIN_OBJECTS = (0.0, 0.02, 0.05, 0.1, 0.2)  # --tradeoff: min_objects swept on AFTER's scene


def tabletop():
    rgb = load_rgb(EXAMPLE_DIR / "tabletop_rgb.png")
    depth = load_depth(EXAMPLE_DIR / "tabletop_depth.png", rgb.shape[:2])
    return rgb, depth, load_intrinsics(EXAMPLE_DIR / "tabletop_intrinsics.json", rgb.shape[1], rgb.shape[0])


def room_frame():
    from lyra_sim.synthetic.captures import render_capture

    capture = render_capture(num_frames=100, width=320, height=240, only_first=1)
    return capture.rgb[0], capture.depth[0], capture.K


WORLDS = {"tabletop example": tabletop, "synthetic RGB-D room frame": room_frame}


def frame_stats(env: NavigateEnv, size: tuple[int, int], underlay_invented=None) -> tuple[float, ...]:
    """(observed share, holes share, observed share with the underlay counted invented, object share, median depth)
    of the robot camera's current view at ``size``; ``underlay_invented``: the world with the underlay's flags
    cleared. Object share: pixels mostly from observed Gaussians that are not floor or wall (``view_shares``)."""
    K = Camera.intrinsics_from_fov(*size, 90.0)
    world_to_cam = torch.from_numpy(env.bullet.camera_world_to_cam()).float()
    camera = Camera(K[None], world_to_cam[None], *size)
    shares = view_shares(env._world_now(), camera)
    strict = observed_shares(underlay_invented, camera)[0] if underlay_invented is not None else shares.observed
    return (float(shares.observed[0]), 1.0 - float(shares.covered[0]), float(strict[0]), float(shares.objects[0]),
            float(shares.depth[0]))


def without_underlay(world):
    """``world`` with the seen-plane underlay (the completion's last Gaussians, observed=True) flagged invented."""
    count = (world.info.get("completion") or {}).get("underlay_gaussians", 0)
    if not count:
        return None
    flags = world.observed.clone()
    flags[-count:] = False
    return world._replace(observed=flags)


def frames_sheet(env: NavigateEnv, tinted, size: tuple[int, int]) -> np.ndarray:
    """The robot's view in true colour (white background) over the invented-tinted one (green background)."""
    K = Camera.intrinsics_from_fov(*size, 90.0)
    camera = env._robot_camera(K, size)
    with torch.no_grad():
        true = render(env._world_now(), camera, background=(1.0, 1.0, 1.0)).rgb.numpy()
        marked = render(tinted, camera, background=(0.0, 1.0, 0.0)).rgb.numpy()
    return np.concatenate([true, marked], axis=0)


def measure(name: str, scene, sampling: str, seeds: int, tag: str, env_options: dict | None = None) -> dict:
    """First frames of ``seeds`` resets and the scripted episode from seed 0 (``env_options``: NavigateEnv's)."""
    env = NavigateEnv(scene, image_size=FIRST_FRAME_SIZE, start_sampling=sampling, **(env_options or {}))
    tinted = tint_completed(first_keyframe(scene.world), strength=0.6)
    strict = without_underlay(first_keyframe(scene.world))
    firsts, panels, starts = [], [], []
    for seed in range(seeds):
        env.reset(seed=seed)
        firsts.append(frame_stats(env, FIRST_FRAME_SIZE, strict))
        starts.append(np.linalg.norm(env.bullet.robot_state()[:2] - scene.camera_to_world[:2, 3]))
        if seed < 8:
            panels.append(frames_sheet(env, tinted, (160, 120)))
    obs, _ = env.reset(seed=0)
    episode = [frame_stats(env, EPISODE_SIZE)]
    end = "steps out"
    for _ in range(EPISODE_STEPS):
        obs, _, terminated, truncated, info = env.step(scripted_action(obs["goal"]))
        episode.append(frame_stats(env, EPISODE_SIZE))
        if terminated or truncated:
            end = "goal" if info["success"] else "collision" if info["collision"] else "truncated"
            break
    env.close()
    slug = name.split()[0] + "_" + name.split()[-1]
    OUT.mkdir(parents=True, exist_ok=True)
    save_png(np.concatenate(panels, axis=1), OUT / f"{slug}_{tag.replace(' ', '_')}_first_frames.png")
    scores = scene.view_scores
    firsts, episode = np.array(firsts), np.array(episode)
    return {
        "first_observed": firsts[:, 0].mean(), "first_holes": firsts[:, 1].mean(),
        "first_observed_strict": firsts[:, 2].mean(), "start_distance": float(np.median(starts)),
        "first_holes_max": firsts[:, 1].max(), "first_objects": firsts[:, 3].mean(),
        "first_objects_min": firsts[:, 3].min(), "first_depth": float(np.median(firsts[:, 4])),
        "episode_observed": episode[:, 0].mean(), "episode_holes": episode[:, 1].mean(),
        "episode_objects": episode[:, 3].mean(), "episode_steps": len(episode) - 1, "episode_end": end,
        "episode_holes_max": episode[:, 1].max(), "episode_frames_over_20": int((episode[:, 1] > 0.2).sum()),
        "episode_frames": len(episode),
        "views_full": float((scores.covered >= 0.99).mean()) if scores is not None else float("nan"),
        "views_min": float(scores.covered.min()) if scores is not None else float("nan"),
        "views": int(scores.covered.size) if scores is not None else 0,
    }


def real_frame():
    """bench_real_frame's Middlebury frame (needs scikit-image: the bench extra)."""
    from bench_real_frame import motorcycle

    frame = motorcycle()
    return frame.left, frame.depth, frame.K_left


def summary(s: dict) -> str:
    """One line of ``measure``'s figures."""
    return (f"first frames observed {s['first_observed']:.3f} (underlay invented {s['first_observed_strict']:.3f}) "
            f"objects {s['first_objects']:.3f} (min {s['first_objects_min']:.3f}) median depth "
            f"{s['first_depth']:.2f} m, "
            f"median start {s['start_distance']:.2f} m from the capture camera's foot, holes {s['first_holes']:.4f} "
            f"(max {s['first_holes_max']:.4f}) | episode observed {s['episode_observed']:.3f} objects "
            f"{s['episode_objects']:.3f} holes {s['episode_holes']:.4f} (max {s['episode_holes_max']:.4f}, "
            f"{s['episode_frames_over_20']}/{s['episode_frames']} > 20 %), {s['episode_steps']} steps, "
            f"{s['episode_end']} | views >= 99 % covered {s['views_full']:.4f} (min {s['views_min']:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the tabletop only, 8 seeds; print, write nothing")
    parser.add_argument("--tradeoff", action="store_true", help="sweep min_objects on AFTER's scenes of both worlds "
                        "and the real frame (8 seeds each), and write that section only")
    args = parser.parse_args()
    if args.tradeoff:
        return tradeoff()
    seeds = 8 if args.quick else 16
    worlds = dict(list(WORLDS.items())[:1]) if args.quick else WORLDS
    rows = []
    for name, make in worlds.items():
        rgb, depth, K = make()
        scenes = {}
        for tag, (generate_options, sampling, env_options) in VARIANTS.items():
            t0 = time.perf_counter()
            if generate_options is None:  # AFTER's scene, other start options (no prepare time of its own)
                scene = scenes["after"]
            else:
                scene = scenes[tag] = prepare_scene((rgb, depth), intrinsics=K, generate_options=generate_options)
            seconds = time.perf_counter() - t0
            stats = measure(name, scene, sampling, seeds, tag, env_options)
            rows.append((name, tag, seconds, stats))
            print(f"{name:28s} {tag:13s} prepare {seconds:5.1f} s  {summary(stats)}", flush=True)
    if not args.quick:
        write_results(rows, seeds)


def tradeoff() -> None:
    """First frames and the scripted episode against min_objects, on AFTER's scenes of two worlds, in one run."""
    rows = []
    for name, make in (*WORLDS.items(), ("real frame", real_frame)):
        rgb, depth, K = make()
        scene = prepare_scene((rgb, depth), intrinsics=K)
        for value in TRADEOFF_MIN_OBJECTS:
            stats = measure(name, scene, "observed", 8, f"min_objects_{value}", {"min_objects": value})
            rows.append((name, value, stats))
            print(f"{name:16s} min_objects {value:.2f}  {summary(stats)}", flush=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    table = ["| world | min_objects | first frames: observed | objects (min) | median depth | median start to "
             "capture camera's foot | scripted episode: observed | objects | end |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, value, s in rows:
        table.append(f"| {name} | {value:.2f} | {s['first_observed']:.3f} | {s['first_objects']:.3f} "
                     f"({s['first_objects_min']:.3f}) | {s['first_depth']:.2f} m | {s['start_distance']:.2f} m | "
                     f"{s['episode_observed']:.3f} | {s['episode_objects']:.3f} | {s['episode_end']} after "
                     f"{s['episode_steps']} steps |")
    body = f"""Measured {datetime.date.today()}, load average {load}, by `python benchmarks/bench_robot_view.py
--tradeoff`: today's worlds (bundled example, synthetic room frame, the Middlebury frame of bench_real_frame) with
`NavigateEnv(...,
min_objects=V)` (`min_observed` 0.7), first frames of 8 seeded resets at 96x72 and the demo's scripted controller
from seed 0 at 160x120. Objects: the share of pixels showing mostly observed Gaussians that are not floor or wall
(`lyra_sim.envs.room_structure`); median depth: of the frame's covered pixels. min_objects 0 is the rule before
(observed share only).

{chr(10).join(table)}

The default, `min_objects=0.05`, is read off this table: the lowest bar at which every first frame shows observed
objects robustly. At 0.02 a start may show only a sliver of an object at the image edge, which the heading's jitter
within its 22.5 degree bin can turn out of view (tests/test_robot_view.py's box room fails at 0.02, passes at 0.05).
On the real frame no bar up to 0.2 costs observed share (the motorcycle fills the observed views). On the bundled
example any bar above 0 trades the close grey back wall (observed ~0.77, objects 0) for views under and beside the
table (observed ~0.5, objects ~0.13), the same for every bar up to 0.1. On the synthetic room each step up costs
observed share (its table top is seen from below, where it is invented). A minimum view depth (measured on the
scored views, not an option) cost more: a median depth of 1 m dropped the bundled example's starts to ~0.15-0.48
observed."""
    print(f"wrote {write_section('Start views: observed share against showing the objects (min_objects)', body)}")


def write_results(rows, seeds: int) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    table = ["| world | variant | first frames: observed share (underlay counted invented) | objects (min) | median "
             "depth | median start to capture camera's foot | first frames: holes (max) | scripted episode: "
             "observed share | objects | end | episode: holes mean (max, frames > 20 %) | scored views with >= 99 % "
             "alpha > 0.5 (min share) | prepare |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, tag, seconds, s in rows:
        table.append(f"| {name} | {tag} | {s['first_observed']:.3f} ({s['first_observed_strict']:.3f}) | "
                     f"{s['first_objects']:.3f} ({s['first_objects_min']:.3f}) | {s['first_depth']:.2f} m | "
                     f"{s['start_distance']:.2f} m | {s['first_holes']:.4f} "
                     f"({s['first_holes_max']:.4f}) | {s['episode_observed']:.3f} | {s['episode_objects']:.3f} | "
                     f"{s['episode_end']} after {s['episode_steps']} steps | {s['episode_holes']:.4f} "
                     f"({s['episode_holes_max']:.4f}, {s['episode_frames_over_20']}/{s['episode_frames']}) | "
                     f"{s['views_full']:.4f} of {s['views']} ({s['views_min']:.3f}) | {seconds:.0f} s |")
    body = f"""Measured {datetime.date.today()} on {platform.machine()}, {torch.get_num_threads()} torch threads, load
average {load} (a 2-core machine shared with other jobs: prepare times are inflated), by
`python benchmarks/bench_robot_view.py`, all variants in one run. BEFORE: completion without the far backdrop and
the floor/wall seams (`CompletionOptions(backdrop=False, seams=False, plane_texture="mirror")`), episodes started
uniformly (`start_sampling="uniform"`); AFTER: the defaults (backdrop sphere, seams and seen-plane underlay, starts
drawn from the views scored at prepare time: an even subsample of free cells, then every free cell around the
{REFINED_CELLS} best by observed share and the {REFINED_CELLS} best by observed x object share; a start view needs
`min_objects` 0.05 of its pixels on observed objects and `min_observed` 0.7 observed, each bar lowered to the 16th
best view where fewer pass, the object bar first; goals in sight, reached facing a good view); OBSERVED ONLY:
AFTER's scene with `min_objects=0`, the start rule of main 85694c2 (the observed share alone). First frames:
{seeds} seeded resets at 96x72; episode: the demo's scripted controller for {EPISODE_STEPS} steps at 160x120 from
seed 0. Observed share: pixels with alpha > 0.5 more than
half of which comes from Gaussians flagged observed (in brackets: with the seen-plane underlay, the seen floor
and wall pixels copied a few mm behind themselves, counted invented); objects: pixels more than half of whose
alpha comes from observed Gaussians that are not floor or wall (`lyra_sim.envs.room_structure`); median depth: of
the covered pixels; holes: alpha <= 0.5 (white in the robot's image); scored views: every candidate start
(scored cells x 16 headings, 32x24; BEFORE's are scored too, only not used).
Contact sheets (true colour over invented tinted magenta, holes green): `out/bench_robot_view/`.

{chr(10).join(table)}

Targets (issue 24): observed share of first frames >= 0.70, and frames that show the place (objects > 0; the
trade-off between the two: the section "Start views: observed share against showing the objects"); alpha > 0.5
on >= 99 % of pixels for every pose."""
    print(f"wrote {write_section('What the robot sees (observed share and holes of Navigate-v0 frames)', body)}")


if __name__ == "__main__":
    main()
