"""What a splat file says about itself: which tool made it, so which axes, camera and scale to assume.

Splat files rarely record their frame. What can be told from the file:

- lyra_sim's own files record frame, scale and provenance (PLY comments, native metadata, USD layer data).
- Lyra-2's reconstruction (``reconstructed_scene.ply``) is in the first camera's OpenCV frame with MoGe /
  Depth Anything 3 depth: roughly metric.
- Lyra-1 writes an INRIA-layout PLY with degree-0 colour, in the first camera's OpenCV frame, at the
  scale of its (non-metric) depth.
- INRIA-trainer PLYs (graphdeco, nerfstudio/gsplat, Polycam; SH degree 1-3) live in their reconstruction's
  frame: arbitrary, often Y-down (COLMAP's first camera). SOG, compressed PLY and .splat keep PLY axes.
- SPZ is RUB by specification (Niantic, World Labs Marble): +y up, the generating camera at the origin
  (converters keep the PLY's frame). glTF is +Y up by specification.

The assumed convention is reported to the user; gravity is then confirmed (or, for arbitrary frames,
found) from the floor.
"""

from __future__ import annotations

import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lyra_sim.io.header_metadata import FRAME_COMMENT_KEY

PLY_HEADER_BYTES = 1 << 20
LYRA2_NAMES = ("reconstructed_scene.ply",)
NATIVE_SUFFIXES = (".safetensors", ".usd", ".usda", ".usdc", ".usdz")


@dataclass(frozen=True)
class Convention:
    """The axes, camera and scale assumed for a splat file."""

    name: str  # lyra_sim, lyra2, lyra1, inria, spz, gltf, packed_ply
    description: str  # for the user: what was assumed and why
    up_known: bool  # the file's up axis is known (the world's frame after loading); else it is searched for
    camera_at_origin: bool  # the generating camera sits at the origin, looking along +z (OpenCV)
    metric: bool = False  # the file's units are (roughly) metres although the file does not record it


def _ply_header(path: Path) -> tuple[list[str], list[str]]:
    """(comments, vertex property names) of a PLY header (empty when it is not readable as one)."""
    with path.open("rb") as f:
        head = f.read(PLY_HEADER_BYTES)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        return [], []
    comments, properties, element = [], [], None
    for line in head[:end].decode("ascii", errors="replace").splitlines():
        words = line.split()
        if words[:1] == ["comment"]:
            comments.append(line.partition(" ")[2])
        elif words[:1] == ["element"] and len(words) > 1:
            element = words[1]
        elif words[:1] == ["property"] and element == "vertex":
            properties.append(words[-1])
    return comments, properties


def _json_records_lyra_sim(path: Path) -> bool:
    """True when a SOG bundle's meta.json or a glTF's asset extras carry lyra_sim's frame and scale."""
    try:
        if path.suffix.lower() == ".sog":
            with zipfile.ZipFile(path) as bundle:
                return "lyra_sim" in json.loads(bundle.read("meta.json"))
        raw = path.read_bytes()
        if raw[:4] == b"glTF":
            length = struct.unpack_from("<I", raw, 12)[0]
            text = raw[20:20 + length]
        else:
            text = raw
        return "lyra_sim" in (json.loads(text).get("asset", {}).get("extras") or {})
    except (OSError, ValueError, KeyError, AttributeError, struct.error, zipfile.BadZipFile):
        return False  # the reader names what is wrong with the file


def recognise(path: str | Path) -> Convention:
    """The convention of the splat file ``path``, from its suffix, name and header."""
    path = Path(path)
    suffix = path.suffix.lower()
    recorded = Convention("lyra_sim", "written by lyra_sim: frame and scale recorded in the file", True, True)
    if suffix in NATIVE_SUFFIXES:
        return recorded
    if suffix == ".spz":
        return Convention("spz", "SPZ: RUB axes by specification (+y up), the origin taken as the generating "
                          "camera (as in PLY-converted and Marble files), scale unknown", True, True)
    if suffix in (".glb", ".gltf", ".sog") and _json_records_lyra_sim(path):
        return recorded
    if suffix in (".glb", ".gltf"):
        return Convention("gltf", "glTF: +Y up by specification, camera and scale unknown", True, False)
    if suffix != ".ply":
        return Convention("packed_ply", f"{suffix} file: PLY axes of an unknown reconstruction (up searched for)",
                          False, False)
    comments, properties = _ply_header(path)
    if any(c.split()[:1] == [FRAME_COMMENT_KEY] for c in comments):
        return recorded
    if path.name.lower() in LYRA2_NAMES:
        return Convention("lyra2", "Lyra-2 reconstruction: first camera's OpenCV frame (y down, z forward), "
                          "MoGe/DA3 depth taken as metric", True, True, metric=True)
    if "packed_position" in properties:
        return Convention("packed_ply", "compressed PLY: PLY axes of an unknown reconstruction (up searched for)",
                          False, False)
    if not any(p.startswith("f_rest_") for p in properties):
        return Convention("lyra1", "Lyra-1 style PLY (degree-0 colour): first camera's OpenCV frame "
                          "(y down, z forward), scale unknown", True, True)
    return Convention("inria", "INRIA-trainer PLY (SH degree >= 1): the reconstruction's own frame, often Y-down "
                      "(COLMAP); up searched for, camera and scale unknown", False, False)
