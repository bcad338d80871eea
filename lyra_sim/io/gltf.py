"""glTF 2.0 / GLB with Khronos's ``KHR_gaussian_splatting`` (``.glb``, ``.gltf``): Gaussians as a point primitive.

The attributes follow the extension's specification (KhronosGroup/glTF, Release Candidate; read by three.js,
Babylon, cesium-native and PlayCanvas): ``POSITION``; ``KHR_gaussian_splatting:ROTATION`` (unit quaternion,
glTF order x, y, z, w), ``:SCALE`` (linear), ``:OPACITY`` (linear, 0..1), ``:SH_DEGREE_l_COEF_n`` (one RGB
VEC3 per coefficient, m = -l..l, the 3DGS basis order; degree 0 is the DC term), and ``COLOR_0`` as the
fallback colour for viewers without the extension (linear RGB, per the glTF specification, and opacity).
We write float accessors; reading also takes the normalised integer types the specification allows.

Axes: glTF's own (+Y up, +Z the asset's front, +X its left, metres). A camera-made ("opencv") world is turned
a half turn about its z axis (x right, y down -> x left, y up), as PlayCanvas's splat-transform does; a
"z_up" world maps x forward, y left, z up to glTF +Z, +X, +Y. Orientations and SH coefficients turn with it.
Reading gives a "z_up" world by default (glTF states where up is), or ``frame="opencv"`` to undo our writer.
A world of known scale is written in metres. lyra_sim's scale, info and ``observed`` flag travel in
``asset.extras.lyra_sim`` and an application attribute ``_LYRA_OBSERVED`` that other readers ignore; files
from other tools (which copy their trainer's units) are read with an unknown scale.

Container: ``pygltflib`` reads and writes the JSON and the GLB chunks (alignment, data URIs); the attribute
arrays are packed here with numpy, since glTF libraries handle meshes, not Gaussian attributes.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import numpy as np
import torch

from lyra_sim.io.atomic import atomic_path
from lyra_sim.io.errors import WorldFileError
from lyra_sim.world import FRAMES, GaussianWorld, WorldError

EXTENSION = "KHR_gaussian_splatting"
PREFIX = EXTENSION + ":"
OBSERVED_ATTRIBUTE = "_LYRA_OBSERVED"
#: Rotation from each lyra_sim frame to glTF's axes (x_gltf = R @ x).
FRAME_TO_GLTF = {
    "opencv": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "z_up": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 0.0)),
}
_FLOAT, _BYTE, _UBYTE, _SHORT, _USHORT, _UINT = 5126, 5120, 5121, 5122, 5123, 5125
_DTYPES = {_FLOAT: "<f4", _BYTE: "i1", _UBYTE: "u1", _SHORT: "<i2", _USHORT: "<u2", _UINT: "<u4"}
_WIDTHS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}
_POINTS = 0
_ARRAY_BUFFER = 34962


def _sh_names(degree: int) -> list[str]:
    """Attribute names of the SH coefficients up to ``degree``, in the world's coefficient order."""
    return [f"{PREFIX}SH_DEGREE_{level}_COEF_{n}" for level in range(degree + 1) for n in range(2 * level + 1)]


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


# --- writing -----------------------------------------------------------------------------------------------


def write_gltf(world: GaussianWorld, path: str | os.PathLike) -> Path:
    """Write ``.glb`` (binary) or ``.gltf`` (JSON, buffer embedded as a data URI) atomically; returns the path."""
    import pygltflib

    path = Path(path)
    if world.sh_degree > 3:
        raise WorldFileError(f"{path}: KHR_gaussian_splatting holds SH degree 0-3, the world has {world.sh_degree}")
    metric = world.meters_per_unit is not None
    gl = world.transformed(rotation=torch.tensor(FRAME_TO_GLTF[world.frame]), scale=world.meters_per_unit or 1.0)
    means = gl.means.detach().cpu().float().numpy()
    quats = gl.quats.detach().cpu().double()
    quats = (quats / quats.norm(dim=1, keepdim=True)).float().numpy()
    sh = gl.sh.detach().cpu().float().numpy()
    opacities = gl.opacities.detach().cpu().float().numpy()
    colour = _srgb_to_linear(world.rgb.detach().cpu().double().numpy())
    arrays: dict[str, np.ndarray] = {
        "POSITION": means,
        "COLOR_0": np.clip(np.round(np.concatenate([colour, opacities[:, None]], 1) * 255), 0, 255).astype(np.uint8),
        PREFIX + "ROTATION": np.ascontiguousarray(quats[:, [1, 2, 3, 0]]),
        PREFIX + "SCALE": gl.scales.detach().cpu().float().numpy(),
        PREFIX + "OPACITY": opacities,
    }
    for k, name in enumerate(_sh_names(world.sh_degree)):
        arrays[name] = np.ascontiguousarray(sh[:, k])
    if not bool(world.observed.all()):
        arrays[OBSERVED_ATTRIBUTE] = world.observed.detach().cpu().numpy().astype(np.uint8)
    blob, views, accessors = bytearray(), [], []
    for name, values in arrays.items():
        data = np.ascontiguousarray(values).tobytes()
        views.append(pygltflib.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data), target=_ARRAY_BUFFER))
        blob += data + b"\0" * (-len(data) % 4)
        component = {np.dtype("float32"): _FLOAT, np.dtype("uint8"): _UBYTE}[values.dtype]
        width = 1 if values.ndim == 1 else values.shape[1]
        accessor = pygltflib.Accessor(bufferView=len(views) - 1, componentType=component, count=len(world),
                                      type={1: "SCALAR", 3: "VEC3", 4: "VEC4"}[width],
                                      normalized=True if name == "COLOR_0" else None)
        if name == "POSITION" and len(world):
            accessor.min, accessor.max = means.min(0).tolist(), means.max(0).tolist()
        accessors.append(accessor)
    primitive = pygltflib.Primitive(attributes=pygltflib.Attributes(), mode=_POINTS, extensions={EXTENSION: {
        "kernel": "ellipse", "colorSpace": "srgb_rec709_display", "projection": "perspective",
        "sortingMethod": "cameraDistance"}})
    primitive.attributes = {name: i for i, name in enumerate(arrays)}  # custom semantics: a plain dict
    lyra = {"source_frame": world.frame, "meters_per_unit": 1.0 if metric else None, "info": world.info}
    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(version="2.0", generator="lyra_sim", extras={"lyra_sim": lyra}),
        extensionsUsed=[EXTENSION], scene=0, scenes=[pygltflib.Scene(nodes=[0])],
        nodes=[pygltflib.Node(mesh=0)], meshes=[pygltflib.Mesh(primitives=[primitive])],
        buffers=[pygltflib.Buffer(byteLength=len(blob))], bufferViews=views, accessors=accessors,
    )
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".glb":
            gltf.set_binary_blob(bytes(blob))
            gltf.save_binary(str(tmp))
        else:
            gltf.buffers[0].uri = "data:application/octet-stream;base64," + base64.b64encode(bytes(blob)).decode()
            tmp.write_text(gltf.to_json(separators=(",", ":")))
    return path


# --- reading -----------------------------------------------------------------------------------------------


def _buffer_bytes(path: Path, gltf, index: int) -> bytes:
    buffer = gltf.buffers[index]
    if buffer.uri is None:
        blob = gltf.binary_blob()
        if blob is None:
            raise WorldFileError(f"{path}: buffer {index} has no data (no GLB binary chunk)")
        return blob
    if buffer.uri.startswith("data:"):
        try:
            return base64.b64decode(buffer.uri.partition(",")[2], validate=True)
        except ValueError as exc:
            raise WorldFileError(f"{path}: buffer {index} has a bad data URI ({exc})") from exc
    target = (path.parent / buffer.uri).resolve()
    if path.parent.resolve() not in target.parents or not target.is_file():
        raise WorldFileError(f"{path}: buffer {index} names {buffer.uri!r}, not a file beside the glTF")
    return target.read_bytes()


def _accessor(path: Path, gltf, buffers: dict, name: str, index: int) -> np.ndarray:
    """An accessor's values as float64 (N, width), normalised integers mapped to [0, 1] or [-1, 1]."""
    try:
        acc = gltf.accessors[index]
        view = gltf.bufferViews[acc.bufferView]
    except (IndexError, TypeError) as exc:
        raise WorldFileError(f"{path}: attribute {name} names a missing accessor or buffer view") from exc
    if acc.type not in _WIDTHS or acc.componentType not in _DTYPES or acc.sparse is not None:
        raise WorldFileError(f"{path}: attribute {name} has an unsupported accessor ({acc.type}, {acc.componentType})")
    if view.buffer not in buffers:
        buffers[view.buffer] = _buffer_bytes(path, gltf, view.buffer)
    data = buffers[view.buffer]
    dtype, width = np.dtype(_DTYPES[acc.componentType]), _WIDTHS[acc.type]
    stride = view.byteStride or dtype.itemsize * width
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    end = start + (stride * (acc.count - 1) + dtype.itemsize * width if acc.count else 0)
    if end > min(len(data), (view.byteOffset or 0) + view.byteLength):
        raise WorldFileError(f"{path}: attribute {name} reads past the end of its buffer (truncated file?)")
    try:
        values = np.ndarray((acc.count, width), dtype, data, start, (stride, dtype.itemsize)).astype(np.float64)
    except (ValueError, TypeError) as exc:  # a negative count or offset, a stride shorter than an element
        raise WorldFileError(f"{path}: attribute {name} has an impossible layout ({exc})") from exc
    if acc.normalized and dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.maximum(values / info.max, -1.0)
    if not np.isfinite(values).all():
        raise WorldFileError(f"{path}: attribute {name} has non-finite values")
    return values


def _node_transforms(gltf, mesh_index: int) -> list[np.ndarray]:
    """The global 4x4 matrix of every node instancing ``mesh_index`` (the default scene, else all roots)."""
    def local(node) -> np.ndarray:
        if node.matrix is not None:
            return np.asarray(node.matrix, np.float64).reshape(4, 4).T  # glTF stores column-major
        x, y, z, w = node.rotation or (0.0, 0.0, 0.0, 1.0)
        rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
        out = np.eye(4)
        out[:3, :3] = rot * np.asarray(node.scale or (1.0, 1.0, 1.0))
        out[:3, 3] = node.translation or (0.0, 0.0, 0.0)
        return out

    children = {c for node in gltf.nodes for c in (node.children or [])}
    if gltf.scenes and gltf.scene is not None and gltf.scene < len(gltf.scenes):
        roots = gltf.scenes[gltf.scene].nodes or []
    else:
        roots = [i for i in range(len(gltf.nodes)) if i not in children]
    found, stack, seen = [], [(i, np.eye(4)) for i in roots], set()
    while stack:
        index, parent = stack.pop()
        if index in seen or index >= len(gltf.nodes):
            continue
        seen.add(index)
        node = gltf.nodes[index]
        matrix = parent @ local(node)
        if node.mesh == mesh_index:
            found.append(matrix)
        stack.extend((c, matrix) for c in node.children or [])
    return found


def _similarity(path: Path, matrix: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """(rotation, uniform scale, translation) of a node matrix; other transforms would shear the Gaussians."""
    linear = matrix[:3, :3]
    scale = float(np.cbrt(np.linalg.det(linear))) if np.linalg.det(linear) > 0 else 0.0
    if scale <= 0 or not np.allclose(linear.T @ linear, scale**2 * np.eye(3), atol=1e-5 * max(scale**2, 1e-12)):
        raise WorldFileError(f"{path}: a splat node has a non-uniform, mirrored or singular transform")
    return linear / scale, scale, matrix[:3, 3]


def _primitive_world(path: Path, gltf, buffers: dict, attributes: dict) -> GaussianWorld:
    missing = [n for n in ("POSITION", PREFIX + "ROTATION", PREFIX + "SCALE", PREFIX + "OPACITY",
                           PREFIX + "SH_DEGREE_0_COEF_0") if n not in attributes]
    if missing:
        raise WorldFileError(f"{path}: KHR_gaussian_splatting primitive lacks {missing}")
    degree = 0
    while degree < 3 and all(n in attributes for n in _sh_names(degree + 1)):
        degree += 1
    if any(n.startswith(f"{PREFIX}SH_DEGREE_{degree + 1}_") for n in attributes):
        raise WorldFileError(f"{path}: SH degree {degree + 1} is only partly defined")
    get = {name: _accessor(path, gltf, buffers, name, attributes[name])
           for name in ["POSITION", PREFIX + "ROTATION", PREFIX + "SCALE", PREFIX + "OPACITY", *_sh_names(degree)]}
    counts = {len(v) for v in get.values()}
    if len(counts) != 1:
        raise WorldFileError(f"{path}: splat attributes have different counts {sorted(counts)}")
    xyzw = get[PREFIX + "ROTATION"]
    if len(xyzw) and (np.linalg.norm(xyzw, axis=1) == 0).any():
        raise WorldFileError(f"{path}: zero-length rotation quaternion")
    observed = None
    if OBSERVED_ATTRIBUTE in attributes:
        observed = torch.from_numpy(_accessor(path, gltf, buffers, OBSERVED_ATTRIBUTE,
                                              attributes[OBSERVED_ATTRIBUTE])[:, 0] != 0)
    try:
        return GaussianWorld(
            means=torch.from_numpy(get["POSITION"]).float(),
            quats=torch.from_numpy(xyzw[:, [3, 0, 1, 2]]).float(),
            scales=torch.from_numpy(get[PREFIX + "SCALE"]).float(),
            opacities=torch.from_numpy(get[PREFIX + "OPACITY"][:, 0]).float(),
            sh=torch.from_numpy(np.stack([get[n] for n in _sh_names(degree)], axis=1)).float(),
            observed=observed,
        )
    except WorldError as exc:
        raise WorldFileError(f"{path}: {exc}") from exc


def read_gltf(path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None) -> GaussianWorld:
    """Load every ``KHR_gaussian_splatting`` primitive of a ``.glb`` / ``.gltf`` (node transforms applied) into
    one world in ``frame`` ("z_up", the default: glTF's +Y up becomes +z; or "opencv", undoing our writer)."""
    import pygltflib

    path = Path(path)
    frame = frame or "z_up"
    if frame not in FRAMES:
        raise WorldFileError(f"{path}: frame must be one of {FRAMES}, got {frame!r}")
    if not path.is_file():
        raise WorldFileError(f"{path}: no such file")
    try:
        gltf = pygltflib.GLTF2.load_binary(str(path)) if path.read_bytes()[:4] == b"glTF" else \
            pygltflib.GLTF2.from_json(path.read_text(encoding="utf-8"))
    except Exception as exc:  # pygltflib raises whatever its JSON / struct parsing meets
        raise WorldFileError(f"{path}: not a readable glTF file ({type(exc).__name__}: {exc})") from exc
    if gltf is None:
        raise WorldFileError(f"{path}: not a readable glTF file")
    buffers: dict[int, bytes] = {}
    parts = []
    for mesh_index, mesh in enumerate(gltf.meshes or []):
        for primitive in mesh.primitives or []:
            if EXTENSION not in (primitive.extensions or {}):
                continue
            if primitive.mode != _POINTS:
                raise WorldFileError(f"{path}: a KHR_gaussian_splatting primitive must have mode POINTS (0)")
            attributes = primitive.attributes if isinstance(primitive.attributes, dict) else \
                {k: v for k, v in vars(primitive.attributes).items() if v is not None}
            local = _primitive_world(path, gltf, buffers, attributes)
            for matrix in _node_transforms(gltf, mesh_index) or [np.eye(4)]:
                if np.array_equal(matrix, np.eye(4)):  # the usual case: skip rotating millions of SH sets
                    parts.append(local)
                    continue
                rotation, scale, translation = _similarity(path, matrix)
                parts.append(local.transformed(rotation=torch.from_numpy(rotation).float(), scale=scale,
                                               translation=torch.from_numpy(translation).float()))
    if not parts:
        raise WorldFileError(f"{path}: no KHR_gaussian_splatting primitive in this glTF file")
    lyra = ((gltf.asset.extras or {}) if gltf.asset else {}).get("lyra_sim", {})
    if meters_per_unit is None and isinstance(lyra, dict) and lyra.get("meters_per_unit"):
        meters_per_unit = float(lyra["meters_per_unit"])
    gl = parts[0] if len(parts) == 1 else GaussianWorld.concatenate(parts)
    to_frame = torch.tensor(FRAME_TO_GLTF[frame]).T
    world = gl.transformed(rotation=to_frame, frame=frame, meters_per_unit=meters_per_unit)
    if isinstance(lyra, dict) and isinstance(lyra.get("info"), dict):
        world.info = dict(lyra["info"])
    return world


__all__ = ["EXTENSION", "FRAME_TO_GLTF", "read_gltf", "write_gltf"]
