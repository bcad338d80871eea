"""Colliders against the true bodies of PyBullet scenes (issue 21): rays from robot cameras and dropped balls.

Four scenes of lyra_sim.synthetic.collider_scenes (a table with chairs, a shelf with thin boards, crates and a
ball, a corner with a doorway), one RGB-D view each at 320x240 and 640x480, plus each scene given only as a
splat file (the 320x240 world saved as PLY without its depth provenance and reloaded: no measured views).
Per scene, BEFORE (the proxy of ``--before``, a git revision, loaded from its source) and AFTER (this tree),
built in the same run from the same aligned world and measured views:

- rays of 30 robot cameras (heights 0.3/0.6/1.0 m, yaw -40..40 degrees, at the input camera and 0.8 m
  forward; 64x48 each) cast with pybullet's rayTestBatch against the true bodies and against the proxy
  (open3d): the share whose proxy hit lies within 5 cm of the true surface along its normal, for surfaces
  the input frame saw (its depth agrees within 2 cm + 1 %) and within 20 cm for those it did not;
- 60 balls (r = 5 cm) dropped from 1.5 m over points the input saw (none starting inside a true body, e.g. a
  wall): share resting within 3 cm of their true rest height;
- build time (wall seconds, agreement excluded; the process's CPU seconds and the load average beside it:
  the machine is shared) and triangles; AFTER's build stages; the agreement line.

    python benchmarks/bench_colliders.py [--before REV] [--quick | --large | --splat-files]   # writes its section
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results import write_section

from lyra_sim.align import align_world
from lyra_sim.generate import generate_world
from lyra_sim.io import load_world, save_world
from lyra_sim.physics.agreement import collider_agreement
from lyra_sim.physics.aligned import move_views
from lyra_sim.physics.proxy import build_collision_proxy
from lyra_sim.physics.pybullet_quiet import import_pybullet
from lyra_sim.physics.raycast import cast_rays
from lyra_sim.synthetic.collider_scenes import SCENES, collider_scene

p = import_pybullet()
ROOT = Path(__file__).resolve().parents[1]
BENCH_SCENES = ("table_chairs", "shelf", "crates_ball", "doorway_corner")
HEIGHTS, YAWS_DEG, FORWARD = (0.3, 0.6, 1.0), (-40, -20, 0, 20, 40), (0.0, 0.8)
RAY_IMAGE, RAY_FOV_DEG = (64, 48), 60.0
SEEN_WITHIN, UNSEEN_WITHIN, DROP_WITHIN = 0.05, 0.20, 0.03
BALLS, BALL_RADIUS, DROP_HEIGHT = 60, 0.05, 1.5


PREVIOUS_MODULES = ("measured", "floaters", "splat_collider", "proxy")  # in import order


def previous_proxy(revision: str):
    """lyra_sim/physics/proxy.py at ``revision``, imported as a module of its own, with the measured meshes,
    floaters and splat-file evidence (lyra_sim/physics/measured.py, floaters.py, splat_collider.py) of that
    revision too (those a revision lacks come from this tree)."""
    modules = {}
    for name in PREVIOUS_MODULES:
        shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:lyra_sim/physics/{name}.py"],
                               capture_output=True, text=True)
        if shown.returncode != 0:
            continue
        source = shown.stdout
        for other in modules:
            source = source.replace(f"from lyra_sim.physics.{other} import", f"from previous_{other} import")
        path = Path(tempfile.mkdtemp()) / f"previous_{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"previous_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"previous_{name}"] = module  # dataclasses (and the proxy's import) look it up there
        spec.loader.exec_module(module)
        modules[name] = module
    return modules["proxy"]


def robot_rays() -> tuple[np.ndarray, np.ndarray]:
    """Origins and unit directions (N, 3) of the robot cameras' pixel rays, true frame (the input looks along +x)."""
    width, height = RAY_IMAGE
    f = 0.5 * width / np.tan(np.radians(RAY_FOV_DEG) / 2)
    u, v = np.meshgrid(np.arange(width) + 0.5 - width / 2, np.arange(height) + 0.5 - height / 2)
    local = np.stack([np.full(u.size, f), -u.ravel(), -v.ravel()], axis=1)  # x forward, y left, z up
    local /= np.linalg.norm(local, axis=1, keepdims=True)
    origins, directions = [], []
    for forward in FORWARD:
        for h in HEIGHTS:
            for yaw in np.radians(YAWS_DEG):
                c, s = np.cos(yaw), np.sin(yaw)
                rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
                directions.append(local @ rotation.T)
                origins.append(np.tile([forward, 0.0, h], (len(local), 1)))
    return np.concatenate(origins), np.concatenate(directions)


def seen_by_input(points: np.ndarray, depth: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """Points (true frame) on a surface the input depth measured (visible there within 2 cm + 1 %)."""
    w2c = np.linalg.inv(cam_to_world)
    pc = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.floor(K[0, 0] * pc[:, 0] / z + K[0, 2])
        v = np.floor(K[1, 1] * pc[:, 1] / z + K[1, 2])
    h, w = depth.shape
    inside = (z > 0.05) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    measured = np.zeros(len(points))
    measured[inside] = depth[v[inside].astype(int), u[inside].astype(int)]
    return inside & (measured > 0) & (np.abs(measured - z) < 0.02 + 0.01 * z)


def ray_scores(truth, proxy, to_aligned, rays, seen) -> dict:
    origins, directions, t_true, normals, valid = rays
    o = origins @ to_aligned[:3, :3].T + to_aligned[:3, 3]
    d = directions @ to_aligned[:3, :3].T
    t_proxy = cast_rays(proxy.vertices, proxy.faces, o, d)
    along_normal = np.abs((t_proxy - t_true) * (directions * normals).sum(axis=1))
    along_normal[~np.isfinite(t_proxy)] = np.inf
    obstacle = valid & (np.abs((origins + t_true[:, None] * directions)[:, 2]) > 0.01)  # not the floor
    return {"seen": float((along_normal[valid & seen] <= SEEN_WITHIN).mean()),
            "seen_obstacles": float((along_normal[obstacle & seen] <= SEEN_WITHIN).mean()),
            "unseen": float((along_normal[valid & ~seen] <= UNSEEN_WITHIN).mean()) if (valid & ~seen).any() else 1.0,
            "seen_missed": float((~np.isfinite(t_proxy[valid & seen])).mean()) if (valid & seen).any() else 0.0}


def rest_heights(build_statics, starts: np.ndarray) -> np.ndarray:
    """Rest height (z of the centre) of balls dropped at ``starts`` (N, 3), each alone with the static bodies."""
    client = p.connect(p.DIRECT)
    try:
        build_statics(client)
        p.setGravity(0, 0, -9.81, physicsClientId=client)
        shape = p.createCollisionShape(p.GEOM_SPHERE, radius=BALL_RADIUS, physicsClientId=client)
        balls = []
        for start in starts:
            ball = p.createMultiBody(0.1, shape, basePosition=start.tolist(), physicsClientId=client)
            p.changeDynamics(ball, -1, rollingFriction=0.02, spinningFriction=0.02, lateralFriction=1.0,
                             physicsClientId=client)
            for other in balls:  # balls ignore each other
                p.setCollisionFilterPair(ball, other, -1, -1, 0, physicsClientId=client)
            balls.append(ball)
        for _ in range(720):
            p.stepSimulation(physicsClientId=client)
        return np.array([p.getBasePositionAndOrientation(b, physicsClientId=client)[0][2] for b in balls])
    finally:
        p.disconnect(client)


def proxy_statics(proxy, to_aligned):
    """Static bodies of a proxy (concave trimesh + floor plane), moved back into the true frame."""
    back = np.linalg.inv(to_aligned)
    vertices = proxy.vertices @ back[:3, :3].T + back[:3, 3]

    def build(client):
        plane = p.createCollisionShape(p.GEOM_PLANE, physicsClientId=client)
        p.createMultiBody(0, plane, basePosition=[0, 0, float((back @ [0, 0, proxy.floor_z or 0.0, 1])[2])],
                          physicsClientId=client)
        mesh = p.createCollisionShape(p.GEOM_MESH, vertices=vertices.tolist(),
                                      indices=proxy.faces.reshape(-1).astype(int).tolist(),
                                      flags=p.GEOM_FORCE_CONCAVE_TRIMESH, physicsClientId=client)
        p.createMultiBody(0, mesh, physicsClientId=client)
    return build


def drop_starts(depth, K, cam_to_world, rng, truth) -> np.ndarray:
    """BALLS drop points at DROP_HEIGHT above surfaces the input saw facing up (random measured pixels whose true
    normal's z exceeds 0.7, true frame), each where the ball does not start inside a true body (pybullet's
    closest points of a probe sphere 1 cm larger): a ball started inside a wall or a 1.8 m shelf side has no rest
    height to compare (PyBullet pushes it out anywhere). (A pixel on an upright face, a crate's front or a
    chair back, puts the ball on the face's top corner, within a few mm of rolling off either way: a knife edge
    no collider from one view decides, which made up most of the drops that missed.)"""
    v, u = np.nonzero(depth > 0)
    pick = rng.choice(len(u), 16 * BALLS, replace=False)
    z = depth[v[pick], u[pick]]
    pc = np.stack([(u[pick] + 0.5 - K[0, 2]) / K[0, 0] * z, (v[pick] + 0.5 - K[1, 2]) / K[1, 1] * z, z], axis=1)
    points = pc @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    eye = cam_to_world[:3, 3]
    rays = points - eye
    _, normals, _ = truth.ray_test(np.tile(eye, (len(points), 1)), rays / np.linalg.norm(rays, axis=1, keepdims=True))
    points = points[(np.hypot(points[:, 0], points[:, 1]) < 6.0) & (normals[:, 2] > 0.7)]
    starts = np.column_stack([points[:, :2], np.full(len(points), DROP_HEIGHT)])
    client = truth.client
    probe = p.createMultiBody(0, p.createCollisionShape(p.GEOM_SPHERE, radius=BALL_RADIUS + 0.01,
                                                         physicsClientId=client), physicsClientId=client)
    free = []
    for start in starts:
        p.resetBasePositionAndOrientation(probe, start.tolist(), [0, 0, 0, 1], physicsClientId=client)
        free.append(not any(p.getClosestPoints(probe, body, 0.0, physicsClientId=client) for body in truth.bodies))
    p.removeBody(probe, physicsClientId=client)
    return starts[np.array(free, bool)][:BALLS]


def evaluate(name, world, views, truth, depth, K, cam_to_world, rays, seen, true_rest, starts, builders):
    rows = []
    to_aligned = np.asarray(world.info["alignment"]["transform"]) @ np.linalg.inv(cam_to_world)
    for label, build in builders:
        start, cpu = time.perf_counter(), time.process_time()
        proxy = build(world, views)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        scores = ray_scores(truth, proxy, to_aligned, rays, seen)
        rest = rest_heights(proxy_statics(proxy, to_aligned), starts)
        agreement = collider_agreement(world, proxy)
        agree = np.abs(rest - true_rest) <= DROP_WITHIN
        on_objects = true_rest > BALL_RADIUS + 0.02
        drops = float(agree.mean())
        scores["drops_on_objects"] = f"{int(agree[on_objects].sum())}/{int(on_objects.sum())}"
        rows.append({"scene": name, "proxy": label, **scores, "drops": drops, "seconds": seconds, "cpu": cpu,
                     "load": os.getloadavg()[0], "stages": proxy.info.get("stage_seconds"),
                     "triangles": len(proxy.faces), "agreement": agreement})
        print(f"{name:32s} {label:6s} seen {scores['seen']:.3f} (obstacles {scores['seen_obstacles']:.3f}) "
              f"unseen {scores['unseen']:.3f} drops {rows[-1]['drops']:.3f} ({scores['drops_on_objects']} on objects) "
              f"build {seconds:5.1f} s ({cpu:.1f} s CPU, load {os.getloadavg()[0]:.1f}) "
              f"{len(proxy.faces):7,d} tri | {agreement.as_line()}", flush=True)
    return rows


def bundled_example(builders) -> list[str]:
    """Agreement of BEFORE and AFTER on the bundled tabletop RGB-D example (no ground truth: the figure a user
    sees), and a picture: the splats from a robot-height camera beside each collider's depth from there."""
    from PIL import Image

    from lyra_sim.demo import example_paths
    from lyra_sim.inputs.images import load_depth, load_intrinsics, load_rgb
    from lyra_sim.physics.agreement import ring_cameras
    from lyra_sim.rendering import render

    rgb_path, depth_path, intrinsics_path = example_paths()
    rgb = load_rgb(rgb_path)
    depth = load_depth(depth_path, rgb.shape[:2])
    K = load_intrinsics(intrinsics_path, rgb.shape[1], rgb.shape[0])
    world = align_world(generate_world(rgb, depth=depth, intrinsics=K))
    views = move_views([(depth, K, np.eye(4))], world.info["alignment"]["transform"])
    camera = ring_cameras(world, image_size=(320, 240))[7]  # 0.9 m high, yawed -20 degrees, at the input camera
    splats = render(world, camera).to_uint8().numpy()
    origins, directions = (a.reshape(-1, 3).numpy().astype(np.float64) for a in camera.rays())
    panels, lines = [splats], []
    for label, build in builders:
        start = time.perf_counter()
        proxy = build(world, views)
        seconds = time.perf_counter() - start
        report = collider_agreement(world, proxy)
        lines.append(f"- {label}: {report.as_line()}; {len(proxy.faces):,} triangles, built in {seconds:.1f} s")
        print(lines[-1], flush=True)
        hit = cast_rays(proxy.vertices, proxy.faces, origins, directions).reshape(240, 320)
        shade = np.clip(1.0 - np.where(np.isfinite(hit), hit, 0.0) / 4.0, 0, 1) * np.isfinite(hit)
        panels.append(np.repeat((shade * 255).astype(np.uint8)[..., None], 3, axis=2))
    Image.fromarray(np.concatenate(panels, axis=1)).save(Path(__file__).with_name("colliders_tabletop.png"))
    return lines


CONVEX_SCENES = ("crates_ball", "table_chairs")


def convex_rows() -> list[str]:
    """V-HACD parts of the AFTER proxy's object pieces (lyra_sim.physics.convex) against those pieces as a
    trimesh, 320x240: part count, time, robot-camera rays (share of the trimesh's hits the parts meet within
    5 cm, share of rays that hit the parts but miss the trimesh) and balls dropped over the objects (share
    resting within 3 cm of their rest height on the trimesh)."""
    from lyra_sim.physics.convex import convex_decomposition, object_pieces

    lines = ["| scene | objects | parts | V-HACD s | rays: parts within 5 cm of the trimesh | rays on parts only "
             "| drops within 3 cm |", "|---|---|---|---|---|---|---|"]
    for name in CONVEX_SCENES:
        truth = collider_scene(name)
        rgb, depth, K, cam_to_world = truth.view(320, 240)
        world = align_world(generate_world(rgb, depth=depth, intrinsics=K))
        views = move_views([(depth, K, np.eye(4))], world.info["alignment"]["transform"])
        proxy = build_collision_proxy(world, extra_views=views, progress=False, agreement=False)
        pieces = object_pieces(*proxy.obstacle_mesh)
        start = time.perf_counter()
        parts = [part for piece in pieces for part in convex_decomposition(*piece)]
        seconds = time.perf_counter() - start
        mesh = _joined(pieces)
        hulls = _joined(parts)
        to_aligned = np.asarray(world.info["alignment"]["transform"]) @ np.linalg.inv(cam_to_world)
        origins, directions = robot_rays()
        o, d = origins @ to_aligned[:3, :3].T + to_aligned[:3, 3], directions @ to_aligned[:3, :3].T
        t_mesh, t_hull = cast_rays(*mesh, o, d), cast_rays(*hulls, o, d)
        on_mesh = np.isfinite(t_mesh)
        rays_within = float((np.abs(t_hull[on_mesh] - t_mesh[on_mesh]) <= SEEN_WITHIN).mean()) if on_mesh.any() else 0
        parts_only = float((np.isfinite(t_hull) & ~on_mesh).mean())
        rng = np.random.default_rng(1)
        points = mesh[0][rng.choice(len(mesh[0]), min(BALLS, len(mesh[0])), replace=False)]
        starts = np.column_stack([points[:, :2], np.full(len(points), DROP_HEIGHT)])
        rest_mesh = rest_heights(_statics([mesh], concave=True), starts)
        rest_hull = rest_heights(_statics(parts, concave=False), starts)
        drops = float((np.abs(rest_hull - rest_mesh) <= DROP_WITHIN).mean())
        lines.append(f"| {name} | {len(pieces)} | {len(parts)} | {seconds:.1f} | {rays_within:.3f} | {parts_only:.3f} "
                     f"| {drops:.2f} |")
        print(lines[-1], flush=True)
        truth.close()
    return lines


def _joined(meshes) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces, count = [], [], 0
    for v, f in meshes:
        vertices.append(v)
        faces.append(f + count)
        count += len(v)
    return np.concatenate(vertices), np.concatenate(faces)


def _statics(meshes, concave: bool):
    """Static bodies (aligned frame): the floor plane z = 0 and each mesh, concave or as a convex hull."""
    def build(client):
        p.createMultiBody(0, p.createCollisionShape(p.GEOM_PLANE, physicsClientId=client), physicsClientId=client)
        for vertices, faces in meshes:
            kwargs = {"indices": faces.reshape(-1).astype(int).tolist(), "flags": p.GEOM_FORCE_CONCAVE_TRIMESH} \
                if concave else {}
            shape = p.createCollisionShape(p.GEOM_MESH, vertices=vertices.tolist(), physicsClientId=client, **kwargs)
            p.createMultiBody(0, shape, physicsClientId=client)
    return build


def build_time_rows(width: int = 640, height: int = 480, repeats: int = 2) -> list[str]:
    """Wall and CPU seconds of this revision's collider build (agreement report off) for each scene's one RGB-D
    view, after one warm-up build, with the per-stage seconds of the last build."""
    rows = ["| scene | build, wall s | build, CPU s | load | triangles | stages (s) |",
            "| --- | --- | --- | --- | --- | --- |"]
    warm = True
    for name in BENCH_SCENES:
        truth = collider_scene(name)
        rgb, depth, K, _ = truth.view(width, height)
        truth.close()
        aligned = align_world(generate_world(rgb, depth=depth, intrinsics=K))
        views = move_views([(depth, K, np.eye(4))], aligned.info["alignment"]["transform"])
        if warm:  # the renderer's and open3d's first calls are not the build
            build_collision_proxy(aligned, extra_views=views, progress=False, agreement=False)
            warm = False
        walls, cpus = [], []
        for _ in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            proxy = build_collision_proxy(aligned, extra_views=views, progress=False, agreement=False)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        stages = ", ".join(f"{k} {v:.2f}" for k, v in proxy.info.get("stage_seconds", {}).items())
        rows.append(f"| {name} {width}x{height} | {', '.join(f'{w:.2f}' for w in walls)} | "
                    f"{', '.join(f'{c:.2f}' for c in cpus)} | {os.getloadavg()[0]:.1f} | {len(proxy.faces):,} | "
                    f"{stages} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="be28263", help="git revision of the BEFORE proxy")
    parser.add_argument("--quick", action="store_true",
                        help="320x240 only, no splat files, a section of its own")
    parser.add_argument("--large", action="store_true",
                        help="640x480 only, no splat files, a section of its own")
    parser.add_argument("--example-only", action="store_true", help="only the bundled example (no RESULTS.md)")
    parser.add_argument("--convex", action="store_true", help="only the V-HACD parts against the trimesh")
    parser.add_argument("--splat-files", action="store_true",
                        help="only the scenes given as splat files (320x240 worlds without provenance), a section "
                             "of its own")
    parser.add_argument("--build-time", action="store_true",
                        help="only this revision's build time per 640x480 frame (run it on a quiet machine)")
    args = parser.parse_args()
    if args.build_time:
        rows = build_time_rows()
        write_section("Collider build time (bench_colliders.py --build-time)", "\n".join([
            f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; target <= 5 s per 640x480 "
            "frame. " + build_time_rows.__doc__.replace("\n    ", " "), "", *rows]))
        return
    if args.convex:
        load = os.getloadavg()
        write_section("Convex parts against the collider trimesh (bench_colliders.py --convex)", "\n".join([
            f"Measured {datetime.date.today()}, load average {load[0]:.1f}; {convex_rows.__doc__.split(chr(10))[0]} "
            + " ".join(line.strip() for line in convex_rows.__doc__.split(chr(10))[1:]), "", *convex_rows()]))
        return
    previous = previous_proxy(args.before)
    builders = [
        ("before", lambda w, v: previous.build_collision_proxy(w, extra_views=v, progress=False)),
        ("after", lambda w, v: build_collision_proxy(w, extra_views=v, progress=False, agreement=False)),
    ]
    example = [] if args.splat_files else bundled_example(builders)
    if args.example_only:
        return
    sizes = ((320, 240),) if args.quick or args.splat_files else ((640, 480),) if args.large else \
        ((320, 240), (640, 480))
    rng = np.random.default_rng(0)
    rows = []
    for width, height in sizes:  # every scene at the small size first: partial runs still cover all scenes
        for name in BENCH_SCENES:
            rows += bench_scene(name, width, height, (width, height) == sizes[0] and not (args.quick or args.large),
                                builders, rng, rgbd=not args.splat_files)
            write_results(rows, example, args)


def bench_scene(name, width, height, with_splat_file, builders, rng, rgbd: bool = True) -> list[dict]:
    """BEFORE and AFTER rows of one scene at one size from its RGB-D view (unless not ``rgbd``) and as a bare
    splat file (``with_splat_file``)."""
    truth = collider_scene(name)
    origins, directions = robot_rays()
    t_true, normals, _ = truth.ray_test(origins, directions)
    valid = np.isfinite(t_true)
    t_true = np.where(valid, t_true, 0.0)
    rgb, depth, K, cam_to_world = truth.view(width, height)
    seen = seen_by_input(origins + t_true[:, None] * directions, depth, K, cam_to_world)
    starts = drop_starts(depth, K, cam_to_world, rng, truth)
    true_rest = rest_heights(lambda client: collider_scene_into(name, client), starts)
    world = generate_world(rgb, depth=depth, intrinsics=K)
    aligned = align_world(world)
    views = move_views([(depth, K, np.eye(4))], aligned.info["alignment"]["transform"])
    rays = (origins, directions, t_true, normals, valid)
    rows = evaluate(f"{name} {width}x{height}", aligned, views, truth, depth, K, cam_to_world, rays, seen,
                    true_rest, starts, builders) if rgbd else []
    if with_splat_file:  # the same scene as a splat file from elsewhere: no depth, no provenance
        with tempfile.TemporaryDirectory() as tmp:
            bare = world._replace(info={}, observed=None)
            loaded = load_world(save_world(bare, Path(tmp) / "world.ply"))
        rows += evaluate(f"{name} splat file", align_world(loaded), [], truth, depth, K, cam_to_world, rays, seen,
                         true_rest, starts, builders)
    truth.close()
    print(f"{name}: {float((true_rest > BALL_RADIUS + 0.02).mean()):.2f} of the balls rest on objects", flush=True)
    return rows


def collider_scene_into(name: str, client: int) -> None:
    """Build scene ``name``'s true bodies into an existing client (for the drop test)."""
    from lyra_sim.synthetic.collider_scenes import ColliderScene

    build, target = SCENES[name]
    build(ColliderScene(name, client, (0.0, 0.0, 1.2), target))


def write_results(rows: list[dict], example: list[str], args) -> None:
    load = os.getloadavg()
    lines = [f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
             f"(before = proxy.py at {args.before}, after = this tree; same worlds, same run).",
             "Targets: seen >= 0.97 within 5 cm, unseen >= 0.85 within 20 cm, drops >= 0.95 within 3 cm, "
             "build <= 5 s (640x480), <= 100k triangles.", "",
             "| scene | proxy | seen (5 cm) | seen obstacles | unseen (20 cm) | drops (3 cm) | on objects | build s "
             "(CPU s, load) | triangles | agreement: median / p95 / within 5 cm |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["agreement"]
        p95 = f"{a.p95:.3f}" if np.isfinite(a.p95) else "miss"
        lines.append(f"| {r['scene']} | {r['proxy']} | {r['seen']:.3f} | {r['seen_obstacles']:.3f} | {r['unseen']:.3f} "
                     f"| {r['drops']:.2f} | {r['drops_on_objects']} "
                     f"| {r['seconds']:.1f} ({r['cpu']:.1f}, {r['load']:.1f}) | {r['triangles']:,} "
                     f"| {a.median:.3f} / {p95} / {a.within:.3f} |")
    stages = [r for r in rows if r["proxy"] == "after" and r["stages"]]
    if stages:
        lines += ["", "Build stages of AFTER (wall seconds): " + "; ".join(
            f"{r['scene']}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items()) for r in stages)]
    if example:
        lines += ["", "Bundled example (lyra_sim/data/tabletop_*; no ground truth, the agreement a user sees; picture: "
                  "benchmarks/colliders_tabletop.png = splats from a 0.9 m robot camera, then the BEFORE and AFTER "
                  "collider's depth from there, nearer = brighter, black = nothing within 4 m):", *example]
    title = "Colliders against true bodies, 320x240 only (bench_colliders.py --quick)" if args.quick else \
        "Colliders against true bodies (bench_colliders.py)"
    if args.large:
        title = "Colliders against true bodies, 640x480 only (bench_colliders.py --large)"
    if args.splat_files:
        title = "Colliders against true bodies, splat files only (bench_colliders.py --splat-files)"
    write_section(title, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
