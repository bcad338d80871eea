"""Reading RGB-D sequences: a folder of colour + depth frames, optional poses, one intrinsics file.

Two folder layouts are understood:

* TUM RGB-D: ``rgb.txt`` and ``depth.txt`` (``timestamp filename`` lines, ``#`` comments), depth
  PNGs in units of 1/5000 m; colour and depth are paired by nearest timestamp (within 20 ms).
* Plain: ``rgb/NNNN.png`` and ``depth/NNNN.png`` paired by file stem, 16-bit depth in millimetres
  unless told otherwise; timestamps from ``timestamps.txt`` (one per frame) or frame index / fps.

Poses are camera-to-world (OpenCV camera axes: x right, y down, z forward), from a TUM trajectory
file (``timestamp tx ty tz qx qy qz qw``, interpolated to the frame times) or a JSON file holding
a list of 4x4 matrices (one per frame, in order) or an object mapping frame stems to 4x4 matrices.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from lyra_sim.defaults import MAX_CAPTURE_FRAMES
from lyra_sim.inputs.images import InputError, image_size, load_depth, load_intrinsics, load_rgb
from lyra_sim.io.guards import (
    MAX_LIST_ENTRIES,
    check_count,
    confined_path,
    input_file,
    read_json,
    read_text_file,
    short_repr,
)

TUM_DEPTH_SCALE = 5000.0  # TUM RGB-D depth PNGs: 5000 units per metre
MAX_PAIR_GAP_S = 0.02  # colour/depth pairing tolerance (TUM's associate.py default)
MAX_POSE_GAP_S = 0.05  # how far outside a trajectory's time range a frame may lie
INTRINSICS_NAMES = ("intrinsics.json", "camera.json")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")
MAX_FRAME_PIXELS = 4096 * 3072  # capture frames are fused at full size: larger ones would cost gigabytes
MAX_LIST_BYTES = 64 << 20  # a list file of MAX_LIST_ENTRIES lines of 64 characters


@dataclass
class RGBDFrame:
    """One frame: colour (H,W,3) float32 in [0,1], metric z-depth (H,W) (0 = invalid), time in seconds."""

    rgb: np.ndarray
    depth: np.ndarray
    timestamp: float
    name: str
    cam_to_world: np.ndarray | None = None


@dataclass
class RGBDSequence:
    """Frames of one capture sharing one pinhole ``K``; ``has_poses`` when every frame carries a pose."""

    frames: list[RGBDFrame]
    K: np.ndarray
    source: str
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def has_poses(self) -> bool:
        return all(f.cam_to_world is not None for f in self.frames)

    @property
    def timestamps(self) -> np.ndarray:
        return np.array([f.timestamp for f in self.frames])

    @property
    def poses(self) -> np.ndarray:
        """Camera-to-world matrices (N,4,4); raises when some frame has none."""
        if not self.has_poses:
            raise InputError(f"{self.source}: the sequence has no poses (lyra_sim.capture.odometry estimates them)")
        return np.stack([f.cam_to_world for f in self.frames])


def is_sequence_dir(path: str | os.PathLike) -> bool:
    """True for a folder in one of the two layouts (TUM ``rgb.txt`` + ``depth.txt``, or ``rgb/`` + ``depth/``)."""
    p = Path(path)
    return p.is_dir() and (
        ((p / "rgb.txt").is_file() and (p / "depth.txt").is_file()) or ((p / "rgb").is_dir() and (p / "depth").is_dir())
    )


def _read_tum_list(path: Path, name: str) -> list[tuple[float, str]]:
    """(timestamp, rest-of-line) pairs of a TUM list file, skipping comments and blank lines.

    The file must be text (a binary file is refused without echoing it) of at most MAX_LIST_ENTRIES lines.
    """
    text = read_text_file(path, name, InputError, max_bytes=MAX_LIST_BYTES)
    check_count(text.count("\n"), MAX_LIST_ENTRIES, f"{path}: lines", "split the capture", InputError)
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        try:
            stamp = float(parts[0])
        except ValueError:
            stamp = math.nan
        if len(parts) < 2 or not math.isfinite(stamp):
            raise InputError(f"{path}:{lineno}: expected 'timestamp value', got {short_repr(line)}")
        rows.append((stamp, parts[1].strip()))
    if not rows:
        raise InputError(f"{path}: no entries")
    return rows


def _tum_pairs(root: Path) -> list[tuple[float, str, str]]:
    """(timestamp, colour entry, depth entry) of a TUM folder, each colour frame matched to the nearest unused
    depth frame in time (sorted search: O(N log N))."""
    rgb = _read_tum_list(confined_path(root, "rgb.txt", "rgb.txt", InputError), "rgb.txt")
    depth = _read_tum_list(confined_path(root, "depth.txt", "depth.txt", InputError), "depth.txt")
    depth_times = np.array([t for t, _ in depth])
    rgb_times = np.array([t for t, _ in rgb])
    order = np.argsort(depth_times, kind="stable")
    ranked = depth_times[order]
    after = np.clip(np.searchsorted(ranked, rgb_times), 0, len(ranked) - 1)
    before = np.clip(after - 1, 0, len(ranked) - 1)
    nearest = np.where(np.abs(ranked[after] - rgb_times) < np.abs(ranked[before] - rgb_times), after, before)
    match = order[nearest]
    close = np.abs(depth_times[match] - rgb_times) <= MAX_PAIR_GAP_S
    pairs, used = [], set()
    for i in np.flatnonzero(close):
        j = int(match[i])
        if j not in used:
            used.add(j)
            pairs.append((rgb[i][0], rgb[i][1], depth[j][1]))
    if not pairs:
        raise InputError(f"{root}: no colour frame in rgb.txt has a depth frame within {MAX_PAIR_GAP_S * 1000:.0f} ms")
    return pairs


def _image_entries(folder: Path) -> dict[str, str]:
    """File stem -> name of the image files in ``folder`` (at most MAX_LIST_ENTRIES are looked at)."""
    entries = {}
    for count, item in enumerate(folder.iterdir(), 1):
        check_count(count, MAX_LIST_ENTRIES, f"{folder}: files", "split the capture", InputError)
        if item.suffix.lower() in IMAGE_SUFFIXES:
            entries[item.stem] = f"{folder.name}/{item.name}"
    return dict(sorted(entries.items()))


def _plain_pairs(root: Path, fps: float) -> list[tuple[float, str, str]]:
    """(timestamp, colour entry, depth entry) of an ``rgb/`` + ``depth/`` folder, matched by stem."""
    colour = _image_entries(confined_path(root, "rgb", "rgb/", InputError, kind="dir"))
    depth = _image_entries(confined_path(root, "depth", "depth/", InputError, kind="dir"))
    stems = sorted(set(colour) & set(depth))
    if not stems:
        raise InputError(f"{root}: no frame has both rgb/<name> and depth/<name> (same file stem)")
    missing = sorted(set(colour) ^ set(depth))
    if missing:
        raise InputError(f"{root}: frames without a colour/depth partner: {', '.join(m[:80] for m in missing[:5])}")
    stamps_file = root / "timestamps.txt"
    if stamps_file.exists() or stamps_file.is_symlink():
        text = read_text_file(confined_path(root, "timestamps.txt", "timestamps.txt", InputError), "timestamps.txt",
                              InputError, max_bytes=MAX_LIST_BYTES)
        words = text.split()
        check_count(len(words), MAX_LIST_ENTRIES, f"{stamps_file}: timestamps", "split the capture", InputError)
        try:
            stamps = [float(v) for v in words]
        except ValueError:
            raise InputError(f"{stamps_file}: expected one number per frame") from None
        if len(stamps) != len(stems):
            raise InputError(f"{stamps_file}: {len(stamps)} timestamps for {len(stems)} frames")
        if not all(math.isfinite(t) for t in stamps):
            raise InputError(f"{stamps_file}: timestamps must be finite numbers")
    else:
        if not (np.isfinite(fps) and fps > 0):
            raise InputError(f"fps: expected a positive frame rate, got {fps}")
        stamps = [i / fps for i in range(len(stems))]
    if any(b <= a for a, b in itertools.pairwise(stamps)):
        raise InputError(f"{stamps_file}: timestamps must increase")
    return [(t, colour[s], depth[s]) for t, s in zip(stamps, stems, strict=True)]


def read_tum_trajectory(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Times (M,) and camera-to-world matrices (M,4,4) of a TUM trajectory (``t tx ty tz qx qy qz qw``)."""
    path = Path(path)
    text = read_text_file(input_file(path, f"poses {path}", InputError), "poses", InputError, max_bytes=MAX_LIST_BYTES)
    check_count(text.count("\n"), MAX_LIST_ENTRIES, f"{path}: lines", "split the capture", InputError)
    try:  # numpy's C parser: a million lines in about a second (a Python loop over them took 15 s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" is the error below
            rows = np.loadtxt(io.StringIO(text), dtype=np.float64, comments="#", ndmin=2)
    except ValueError as exc:
        raise InputError(f"{path}: expected 'timestamp tx ty tz qx qy qz qw' on every line "
                         f"({short_repr(str(exc).splitlines()[0])})") from None
    if rows.shape[0] == 0 or rows.shape[1] != 8:
        raise InputError(f"{path}: expected 'timestamp tx ty tz qx qy qz qw' on every line")
    times, values = rows[:, 0], rows[:, 1:]
    bad = ~np.isfinite(rows).all(axis=1) | (np.linalg.norm(values[:, 3:], axis=1) < 1e-9)
    if bad.any():
        raise InputError(f"{path}: expected finite values and a non-zero quaternion at t={times[bad][0]}")
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    if (np.diff(times) <= 0).any():
        raise InputError(f"{path}: two poses share the timestamp {times[1:][np.diff(times) <= 0][0]}")
    mats = np.repeat(np.eye(4)[None], len(times), axis=0)
    mats[:, :3, :3] = Rotation.from_quat(values[:, 3:]).as_matrix()  # scipy and TUM are both (x, y, z, w)
    mats[:, :3, 3] = values[:, :3]
    return times, mats


def write_tum_trajectory(path: str | os.PathLike, times, cam_to_world) -> Path:
    """Write camera-to-world poses as a TUM trajectory file (atomically)."""
    from lyra_sim.io.atomic import atomic_path

    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for t, m in zip(times, cam_to_world, strict=True):
        q = Rotation.from_matrix(np.asarray(m)[:3, :3]).as_quat()
        lines.append(" ".join(f"{v:.6f}" for v in (float(t), *np.asarray(m)[:3, 3], *q)))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)


def interpolate_poses(times: np.ndarray, poses: np.ndarray, query: np.ndarray, name: str = "poses") -> np.ndarray:
    """Camera-to-world at ``query`` times: linear in position, slerp in rotation, clamped at the ends."""
    if len(times) == 1:
        return np.repeat(poses[:1], len(query), axis=0)
    lo, hi = times[0] - MAX_POSE_GAP_S, times[-1] + MAX_POSE_GAP_S
    outside = (query < lo) | (query > hi)
    if outside.any():
        raise InputError(f"{name}: frame time {query[outside][0]:.3f} s lies outside the trajectory [{times[0]:.3f}, "
                         f"{times[-1]:.3f}] s")
    q = np.clip(query, times[0], times[-1])
    slerp = Slerp(times, Rotation.from_matrix(poses[:, :3, :3]))
    out = np.repeat(np.eye(4)[None], len(q), axis=0)
    out[:, :3, :3] = slerp(q).as_matrix()
    for axis in range(3):
        out[:, axis, 3] = np.interp(q, times, poses[:, axis, 3])
    return out


def _check_pose(m, name: str) -> np.ndarray:
    try:
        m = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name}: expected a 4x4 matrix of numbers") from None
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise InputError(f"{name}: expected a finite 4x4 camera-to-world matrix, got shape {m.shape}")
    if not np.array_equal(m[3], [0.0, 0.0, 0.0, 1.0]):
        raise InputError(f"{name}: the bottom row must be (0, 0, 0, 1), got {m[3].tolist()}")
    r = m[:3, :3]
    if np.abs(r @ r.T - np.eye(3)).max() > 1e-3 or np.linalg.det(r) < 0:
        raise InputError(f"{name}: the rotation part is not a proper rotation")
    return m


def load_poses(path: str | os.PathLike, names: list[str], stamps: np.ndarray) -> np.ndarray:
    """Camera-to-world (N,4,4) for the frames ``names`` at ``stamps`` from a TUM trajectory or a JSON file."""
    path = input_file(path, f"poses {path}", InputError)
    if path.suffix.lower() != ".json":
        times, mats = read_tum_trajectory(path)
        return interpolate_poses(times, mats, stamps, name=str(path))
    data = read_json(path, "poses", InputError)
    if isinstance(data, dict) and "cam_to_world" in data:
        data = data["cam_to_world"]
    if isinstance(data, list):
        check_count(len(data), MAX_LIST_ENTRIES, f"{path}: poses", "split the capture", InputError)
        if len(data) != len(names):
            raise InputError(f"{path}: {len(data)} poses for {len(names)} frames")
        return np.stack([_check_pose(m, f"{path}[{i}]") for i, m in enumerate(data)])
    if isinstance(data, dict):
        missing = [n for n in names if n not in data]
        if missing:
            raise InputError(f"{path}: no pose for frame(s) {', '.join(missing[:5])}")
        return np.stack([_check_pose(data[n], f"{path}[{n!r}]") for n in names])
    raise InputError(f"{path}: expected a list of 4x4 matrices or an object of frame name -> 4x4")


def _find_intrinsics(root: Path, intrinsics) -> tuple[object, float | None, str]:
    """The intrinsics argument (or the folder's intrinsics file), a depth scale it may carry, and its name."""
    if intrinsics is None:
        found = [n for n in INTRINSICS_NAMES if (root / n).exists() or (root / n).is_symlink()]
        if not found:
            raise InputError(f"{root}: no intrinsics given and no {' or '.join(INTRINSICS_NAMES)} in the folder")
        intrinsics = confined_path(root, found[0], found[0], InputError)
    scale, name = None, "intrinsics"
    if isinstance(intrinsics, (str, os.PathLike)):
        name = f"intrinsics {intrinsics}"
        data = read_json(intrinsics, "intrinsics", InputError)  # size-limited, deep nesting refused
        if isinstance(data, dict) and "depth_scale" in data:
            scale = _depth_scale(data["depth_scale"], f"{name}: depth_scale")
        intrinsics = data
    return intrinsics, scale, name


def _depth_scale(value, where: str) -> float:
    """A depth scale read from a file: a finite positive number (units per metre)."""
    try:
        scale = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:
        scale = math.nan
    if not (math.isfinite(scale) and 0 < scale < 1e9):
        raise InputError(f"{where}: expected a positive number of stored units per metre, got {short_repr(str(value))}")
    return scale


def read_sequence(
    path: str | os.PathLike,
    intrinsics=None,
    poses: str | os.PathLike | None = None,
    depth_scale: float | None = None,
    fps: float = 30.0,
    every: int = 1,
    max_frames: int | None = None,
    frame_limit: int = MAX_CAPTURE_FRAMES,
) -> RGBDSequence:
    """Load an RGB-D sequence folder (TUM or plain layout, see the module docstring).

    ``intrinsics`` is a 3x3 K, a dict or a JSON file (fx, fy, cx, cy or K; an optional
    ``depth_scale`` in stored depth units per metre); without it the folder's ``intrinsics.json`` or
    ``camera.json`` is used. ``depth_scale`` overrides the layout's default (TUM 5000, plain 1000).
    ``every`` keeps every n-th frame, ``max_frames`` stops early; more than ``frame_limit`` frames left after
    that is an error (odometry and fusion cost grows with every frame). Every file the folder names must lie
    inside it (symlinks followed); list files, poses and intrinsics are checked before any image is decoded.
    """
    root = Path(path)
    if not is_sequence_dir(root):
        raise InputError(f"{root}: not an RGB-D sequence folder (expected rgb.txt + depth.txt, or rgb/ + depth/)")
    if every < 1:
        raise InputError(f"every: expected an integer >= 1, got {every}")
    tum = (root / "rgb.txt").is_file() and (root / "depth.txt").is_file()
    entries = _tum_pairs(root) if tum else _plain_pairs(root, fps)
    keep = list(range(len(entries)))[::every][:max_frames]
    check_count(len(keep), frame_limit, f"{root}: frames to fuse",
                "keep fewer with --every / --max-frames, or raise --frame-limit", InputError)
    pairs = [(t, confined_path(root, c, "rgb.txt" if tum else "rgb/", InputError),
              confined_path(root, d, "depth.txt" if tum else "depth/", InputError))
             for t, c, d in (entries[i] for i in keep)]
    mats = None
    if poses is not None:  # matched against every frame of the folder, before thinning
        mats = load_poses(poses, [Path(c).stem for _, c, _ in entries], np.array([t for t, _, _ in entries]))
    k_arg, file_scale, k_name = _find_intrinsics(root, intrinsics)
    scale = depth_scale or file_scale or (TUM_DEPTH_SCALE if tum else None)
    frames, K = [], None
    for t, rgb_path, depth_path in pairs:
        if rgb_path.suffix.lower() != ".npy":  # checked from the header: a capture frame is never 36 MP
            w, h = image_size(rgb_path, "colour")
            if w * h > MAX_FRAME_PIXELS:
                raise InputError(f"colour {rgb_path}: {w}x{h} is larger than capture frames may be "
                                 f"({MAX_FRAME_PIXELS:,} pixels); downscale the capture")
        rgb = load_rgb(rgb_path, name="colour")
        h, w = rgb.shape[:2]
        if K is None:
            K = load_intrinsics(k_arg, w, h, name=k_name)
        elif (w, h) != (frames[0].rgb.shape[1], frames[0].rgb.shape[0]):
            raise InputError(f"{rgb_path}: {w}x{h}, but the sequence's frames are "
                             f"{frames[0].rgb.shape[1]}x{frames[0].rgb.shape[0]}")
        depth = load_depth(depth_path, (h, w), name="depth", depth_scale=scale)
        frames.append(RGBDFrame(rgb, depth, float(t), rgb_path.stem))
    if mats is not None:
        for frame, i in zip(frames, keep, strict=True):
            frame.cam_to_world = mats[i]
    return RGBDSequence(frames, K, str(root), {"layout": "tum" if tum else "plain", "depth_scale": scale})


def sequence_from_arrays(rgbs, depths, K, timestamps=None, cam_to_world=None, source: str = "arrays") -> RGBDSequence:
    """A sequence from in-memory frames (colour uint8/float, depth in metres), e.g. straight from a sensor."""
    rgbs, depths = list(rgbs), list(depths)
    if len(rgbs) != len(depths) or not rgbs:
        raise InputError(f"{source}: expected one depth map per colour frame, got {len(depths)} for {len(rgbs)}")
    stamps = np.arange(len(rgbs)) / 30.0 if timestamps is None else np.asarray(timestamps, dtype=np.float64)
    if len(stamps) != len(rgbs) or np.any(np.diff(stamps) <= 0):
        raise InputError(f"{source}: timestamps must be one per frame and increasing")
    frames = []
    for i, (c, d) in enumerate(zip(rgbs, depths, strict=True)):
        rgb = load_rgb(c, name=f"{source}[{i}] colour")
        depth = load_depth(d, rgb.shape[:2], name=f"{source}[{i}] depth")
        frames.append(RGBDFrame(rgb, depth, float(stamps[i]), f"{i:06d}"))
    h, w = frames[0].rgb.shape[:2]
    if any(f.rgb.shape[:2] != (h, w) for f in frames):
        raise InputError(f"{source}: frames differ in size")
    if cam_to_world is not None:
        if len(cam_to_world) != len(frames):
            raise InputError(f"{source}: {len(cam_to_world)} poses for {len(frames)} frames")
        for i, (f, m) in enumerate(zip(frames, cam_to_world, strict=True)):
            f.cam_to_world = _check_pose(m, f"{source} pose {i}")
    return RGBDSequence(frames, load_intrinsics(K, w, h), source)
