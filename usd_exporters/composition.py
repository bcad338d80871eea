"""Inspect a stage's layers with Sdf BEFORE composing it: which files it would read, how many prims it makes.

``Usd.Stage.Open`` reads every sublayer, reference and payload a layer names (absolute paths and ``../``
included) and composes every prim, so a 5 KB file of references that double at each level becomes millions
of prims. Here the layers are parsed (Sdf parses, it does not compose) and walked: asset paths that leave the
stage's folder (or its .usdz package) are refused unless external composition is enabled explicitly, value
clips are refused likewise, and an upper bound of the composed prim count is summed over the arcs (with
memoisation, so the walk costs as many steps as there are prim specs, however large the bound).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from pxr import Sdf, Tf

from usd_exporters.probe import tf_message
from usd_exporters.splats import UsdWorldError

MAX_LAYERS = 256
#: Composed prims a stage may have before reading it is refused (composition costs ~40 us per prim).
DEFAULT_MAX_PRIMS = 100_000


_CRATE_MAGIC = b"PXR-USDC"
_LZ4_MAX_RATIO = 255  # an LZ4 block expands at most ~255x


def check_crate(path: str, what: str) -> None:
    """Refuse a binary (.usdc) layer whose section counts claim more than its bytes can hold.

    The crate reader sizes its tables from these counts before it decompresses anything: one flipped bit in
    a 3 KB file ("67,108,907 tokens") costs 512 MB. Counts are checked against the section sizes here.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(24)
            if len(head) < 24 or not head.startswith(_CRATE_MAGIC):
                return
            size = os.fstat(f.fileno()).st_size
            (toc,) = struct.unpack_from("<q", head, 16)
            if not 24 <= toc <= size - 8:
                raise UsdWorldError(f"{what}: crate table of contents at {toc} lies outside the {size}-byte file")
            f.seek(toc)
            (count,) = struct.unpack("<Q", f.read(8))
            if count > 64:
                raise UsdWorldError(f"{what}: crate file claims {count} sections")
            sections = [struct.unpack("<16sqq", f.read(32)) for _ in range(count)]
            for raw_name, start, length in sections:
                name = raw_name.split(b"\0", 1)[0].decode("ascii", "replace")
                if start < 0 or length < 0 or start + length > size:
                    raise UsdWorldError(f"{what}: crate section {name} ({start}+{length}) lies outside the file")
                f.seek(start)
                words = f.read(24)
                if len(words) < 8:
                    continue
                (claimed,) = struct.unpack_from("<Q", words)
                if name == "TOKENS" and len(words) == 24:
                    raw_bytes, packed = struct.unpack_from("<QQ", words, 8)
                    if packed > length or raw_bytes > _LZ4_MAX_RATIO * packed + 64 or claimed > raw_bytes:
                        raise UsdWorldError(f"{what}: crate file claims {claimed} tokens in {raw_bytes} bytes "
                                            f"from a {length}-byte section")
                elif claimed > _LZ4_MAX_RATIO * 8 * length + 1024:  # integer arrays: a few bits per entry
                    raise UsdWorldError(f"{what}: crate section {name} claims {claimed} entries in {length} bytes")
    except (OSError, struct.error) as exc:
        raise UsdWorldError(f"{what}: unreadable crate file ({exc})") from exc


def open_layer(path: str, what: str) -> Sdf.Layer | None:
    """Parse one layer (no composition); UsdWorldError naming ``what`` when it is not USD."""
    if "[" not in path and os.path.isfile(path):
        check_crate(path, what)
    try:
        return Sdf.Layer.FindOrOpen(path)
    except (Tf.ErrorException, UnicodeDecodeError) as exc:
        raise UsdWorldError(f"{what}: not a readable USD layer ({tf_message(exc)})") from exc


def _list_items(list_proxy) -> list:
    items = []
    for name in ("explicitItems", "addedItems", "prependedItems", "appendedItems", "orderedItems"):
        items.extend(getattr(list_proxy, name, []) or [])
    return items


class _Walker:
    def __init__(self, stage_path: Path, allow_external: bool, max_prims: int):
        self.stage_path = stage_path
        self.folder = stage_path.resolve().parent
        self.package = str(stage_path.resolve()) if stage_path.suffix.lower() == ".usdz" else None
        self.allow_external = allow_external
        self.max_prims = max_prims
        self.layers: dict[str, Sdf.Layer] = {}
        self.stacks: dict[str, tuple[Sdf.Layer, ...]] = {}
        self.sizes: dict[tuple[str, str], int] = {}
        self.active: set[tuple[str, str]] = set()

    # --- files ------------------------------------------------------------------------------------------------
    def _inside(self, absolute: str) -> bool:
        if self.package is not None and absolute.startswith(self.package + "["):
            return True
        outer = absolute.split("[", 1)[0]
        if "://" in outer or not outer:
            return False
        return Path(outer).resolve().is_relative_to(self.folder)

    def dependency(self, layer: Sdf.Layer, asset: str, kind: str) -> Sdf.Layer | None:
        """The layer ``asset`` names (None when it does not exist), refusing files outside the stage."""
        absolute = layer.ComputeAbsolutePath(asset)
        if not self.allow_external and not self._inside(absolute):
            raise UsdWorldError(f"{self.stage_path}: {kind} @{asset}@ in {layer.identifier} reads a file outside "
                                "the stage's folder; external composition is disabled (pass "
                                "allow_external_composition=True to read it)")
        if absolute in self.layers:
            return self.layers[absolute]
        if len(self.layers) >= MAX_LAYERS:
            raise UsdWorldError(f"{self.stage_path}: the stage names more than {MAX_LAYERS} layers")
        found = open_layer(absolute, f"{self.stage_path}: {kind} @{asset}@")
        if found is not None:
            self.layers[absolute] = found
        return found

    def stack(self, layer: Sdf.Layer, seen: tuple[str, ...] = ()) -> tuple[Sdf.Layer, ...]:
        """``layer`` and its sublayers, recursively (the layer stack that composes together)."""
        key = layer.identifier
        if key in self.stacks:
            return self.stacks[key]
        if key in seen:
            raise UsdWorldError(f"{self.stage_path}: sublayer cycle through {key}")
        layers = [layer]
        for sub in layer.subLayerPaths:
            found = self.dependency(layer, sub, "sublayer")
            if found is not None:
                layers.extend(self.stack(found, (*seen, key)))
        self.stacks[key] = tuple(layers)
        return self.stacks[key]

    # --- prims ------------------------------------------------------------------------------------------------
    def size(self, stack: tuple[Sdf.Layer, ...], path: Sdf.Path) -> int:
        """Upper bound of the prims composed at ``path`` of ``stack`` and below (arcs and variants included)."""
        key = (stack[0].identifier, str(path))
        if key in self.sizes:
            return self.sizes[key]
        if key in self.active:
            raise UsdWorldError(f"{self.stage_path}: composition cycle through <{path}> of {stack[0].identifier}")
        self.active.add(key)
        total, children = 1, set()
        for layer in stack:
            spec = layer.GetPrimAtPath(path)
            if spec is None:
                continue
            if not self.allow_external and (spec.HasInfo("clips") or spec.HasInfo("clipAssetPaths")):
                raise UsdWorldError(f"{self.stage_path}: <{path}> uses value clips, which read other files; "
                                    "external composition is disabled (pass allow_external_composition=True)")
            children.update(spec.path.AppendChild(name) for name in spec.nameChildren.keys())  # noqa: SIM118 (the proxy iterates specs)
            total += self._arcs(layer, stack, spec)
            for variant_set in spec.variantSets.values():
                for variant in variant_set.variants.values():
                    total += self.size(stack, variant.primSpec.path) - 1
            if total > self.max_prims:
                break
        for child in sorted(children):
            if total > self.max_prims:
                break
            total += self.size(stack, child)
        self.active.discard(key)
        self.sizes[key] = min(total, self.max_prims + 1)
        return self.sizes[key]

    def _arcs(self, layer: Sdf.Layer, stack: tuple[Sdf.Layer, ...], spec: Sdf.PrimSpec) -> int:
        total = 0
        for kind, proxy in (("reference", spec.referenceList), ("payload", spec.payloadList)):
            for arc in _list_items(proxy):
                target_stack = stack
                if arc.assetPath:
                    found = self.dependency(layer, arc.assetPath, kind)
                    if found is None:
                        continue
                    target_stack = self.stack(found)
                target = arc.primPath
                if target.isEmpty:
                    default = target_stack[0].defaultPrim
                    if not default:
                        continue
                    target = Sdf.Path.absoluteRootPath.AppendChild(default)
                total += self.size(target_stack, target.MakeAbsolutePath(spec.path))
        for proxy in (spec.inheritPathList, spec.specializesList):
            for target in _list_items(proxy):
                total += self.size(stack, target.MakeAbsolutePath(spec.path))
        return total


def check_composition(path: Path, allow_external: bool = False, max_prims: int = DEFAULT_MAX_PRIMS) -> int:
    """Refuse a stage that would read files outside its folder or compose more than ``max_prims`` prims.

    Returns the upper bound of the composed prim count. Raises UsdWorldError naming the stage.
    """
    root = open_layer(str(path), str(path))
    if root is None:
        raise UsdWorldError(f"{path}: not a readable USD stage")
    walker = _Walker(path, allow_external, max_prims)
    walker.layers[root.identifier] = root
    total = 0
    try:
        stack = walker.stack(root)
        names = sorted({name for layer in stack for name in layer.rootPrims.keys()})  # noqa: SIM118
        for name in names:
            total += walker.size(stack, Sdf.Path.absoluteRootPath.AppendChild(name))
            if total > max_prims:
                raise UsdWorldError(f"{path}: the stage composes more than {max_prims:,} prims (references or "
                                    "instancing multiply them); raise max_prims to read it anyway")
    except RecursionError as exc:
        raise UsdWorldError(f"{path}: prims or composition arcs nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise UsdWorldError(f"{path}: a name in the stage is not valid UTF-8 ({exc})") from exc
    return total
