"""A mutation fuzzer for every file reader of lyra_sim (PLY, native, USD, SPZ v3/v4, .splat, compressed PLY, world
info in headers, RGB-D capture folders, images, depth, JSON, latents).

Valid seed files are made here; mutators (byte-level and format-aware: header counts, PNG sizes with a
correct CRC, numbers in text, pickles inside torch zips, safetensors headers) derive hostile variants.
Cases run in worker subprocesses that set an address-space limit (RLIMIT_AS) after their imports and a
per-case alarm; the parent also enforces a wall-clock limit and restarts a worker that dies or hangs.

A case FAILS when the reader raises anything but a LyraSimError, when the error does not name the file, when a
capture folder that names a file outside itself loads or its error echoes that file,
when it crashes the worker, runs out of time or hits the memory limit (each case may map MEMORY_HEADROOM
more address space than the worker had before it). Used by tests/test_fuzz.py
(a few hundred cases) and benchmarks/bench_fuzz.py (thousands, with timings and peak memory).

Run a worker by hand: ``python tests/fuzzing.py worker`` reads JSON lines {"reader", "path"} on stdin.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import time
import traceback
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CASE_TIMEOUT_S = 5.0
MEMORY_HEADROOM = 1 << 30  # address space a worker may add on top of its own after imports
INTERESTING_NUMBERS = ["0", "-1", "1", "2", "65535", "65536", "2147483647", "4294967296", "1e39", "-1e39",
                       "nan", "inf", "1e308", "100000", "999999999999", "0.0", "3"]
INTERESTING_BYTES = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0x0A, 0x20]


# --------------------------------------------------------------------------------------------- seeds
def make_seeds(folder: Path) -> dict[str, list[Path]]:
    """Small valid inputs for each reader (reader name -> seed files)."""
    import plyfile
    import torch
    from PIL import Image

    from lyra_sim.io import save_world
    from lyra_sim.world import GaussianWorld

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    n = 12
    world = GaussianWorld(torch.randn(n, 3, generator=g) + torch.tensor([0, 0, 3.0]), torch.randn(n, 4, generator=g),
                          torch.rand(n, 3, generator=g) * 0.1 + 0.01, torch.rand(n, generator=g),
                          torch.randn(n, 4, 3, generator=g) * 0.3)
    seeds: dict[str, list[Path]] = {}
    ply = save_world(world, folder / "w.ply")
    ascii_ply = folder / "ascii.ply"
    plyfile.PlyData(plyfile.PlyData.read(str(ply)).elements, text=True).write(str(ascii_ply))
    seeds["ply"] = [ply, ascii_ply]
    seeds["native"] = [save_world(world, folder / "w.safetensors")]
    seeds["splat_formats"] = [save_world(world, folder / "w.spz"), save_world(world, folder / "w.compressed.ply"),
                              save_world(world, folder / "w4.spz", version=4)]
    splat = folder / "w.splat"  # antimatter15 layout: position f32x3, scale f32x3, RGBA u8x4, quaternion u8x4
    rows = np.zeros(n, dtype=[("p", "<f4", 3), ("s", "<f4", 3), ("c", "u1", 4), ("q", "u1", 4)])
    rows["p"], rows["s"], rows["c"], rows["q"] = world.means.numpy(), world.scales.numpy(), 200, (255, 128, 128, 128)
    splat.write_bytes(rows.tobytes())
    seeds["splat_formats"].append(splat)
    usd = []
    try:
        from usd_exporters import export_world

        usd = [export_world(world.with_z_up_axes(), folder / f"w{suffix}") for suffix in (".usda", ".usdc", ".usdz")]
        (folder / "refs.usda").write_text(_REFS_USDA)
        usd.append(folder / "refs.usda")
    except ImportError:
        pass
    seeds["usd"] = usd
    rgb = (np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "rgb.png")
    Image.fromarray(rgb).save(folder / "rgb.jpg", quality=80)
    rgba = np.concatenate([rgb, np.full((24, 32, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba).save(folder / "rgba.png")
    seeds["image"] = [folder / "rgb.png", folder / "rgb.jpg", folder / "rgba.png"]
    depth_mm = np.full((24, 32), 1500, np.uint16)
    Image.fromarray(depth_mm).save(folder / "depth.png")
    np.save(folder / "depth.npy", depth_mm.astype(np.float32) / 1000)
    seeds["depth"] = [folder / "depth.png", folder / "depth.npy"]
    (folder / "intrinsics.json").write_text(json.dumps({"fx": 30.0, "fy": 30.0, "cx": 16.0, "cy": 12.0}))
    (folder / "intrinsics_k.json").write_text(json.dumps({"K": [[30.0, 0, 16.0], [0, 30.0, 12.0], [0, 0, 1]]}))
    seeds["intrinsics"] = [folder / "intrinsics.json", folder / "intrinsics_k.json"]
    K = [[30.0, 0, 16.0], [0, 30.0, 12.0], [0, 0, 1]]
    (folder / "cameras.json").write_text(json.dumps({"K": K, "world_to_cam": np.eye(4).tolist(), "width": 32,
                                                     "height": 24}))
    seeds["camera_path"] = [folder / "cameras.json"]
    informed = world.subset(slice(None))
    informed.info = {"intrinsics": K, "image_size": [32, 24], "depth_source": "given", "metric": True}
    informed.meters_per_unit = 1.0
    seeds["world_info"] = [save_world(informed, folder / "info.ply"), save_world(informed, folder / "info.safetensors"),
                           save_world(informed, folder / "info.compressed.ply")]
    torch.save(np.zeros((1, 16, 2, 4, 4), np.float32), folder / "latent.pkl")
    torch.save(torch.zeros(1, 16, 2, 4, 4), folder / "latent_tensor.pkl")
    seeds["latent"] = [folder / "latent.pkl", folder / "latent_tensor.pkl"]
    return seeds


_REFS_USDA = """#usda 1.0
(
    defaultPrim = "World"
    metersPerUnit = 1
    upAxis = "Z"
)

def Xform "World"
{
    def "Proto"
    {
        def ParticleField3DGaussianSplat "Gaussians"
        {
            point3f[] positions = [(0, 0, 1), (1, 0, 1), (0, 1, 1)]
            float[] opacities = [0.5, 0.5, 0.5]
            float3[] scales = [(0.1, 0.1, 0.1), (0.1, 0.1, 0.1), (0.1, 0.1, 0.1)]
        }
    }

    def "A" (
        references = </World/Proto>
    )
    {
        double3 xformOp:translate = (1, 2, 3)
        uniform token[] xformOpOrder = ["xformOp:translate"]
    }
}
"""


# --------------------------------------------------------------------------------------------- mutators
def _byte_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if not data:
        return b"\x00", "empty -> one byte"
    buf = bytearray(data)
    kind = rng.choice(["flip", "set", "insert", "delete", "truncate", "duplicate", "splice_zero"])
    pos = rng.randrange(len(buf))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    elif kind == "set":
        buf[pos] = rng.choice(INTERESTING_BYTES)
    elif kind == "insert":
        buf[pos:pos] = bytes(rng.choice(INTERESTING_BYTES) for _ in range(rng.randint(1, 64)))
    elif kind == "delete":
        del buf[pos:pos + rng.randint(1, 64)]
    elif kind == "truncate":
        del buf[pos:]
    elif kind == "duplicate":
        end = min(len(buf), pos + rng.randint(1, 256))
        buf[end:end] = buf[pos:end] * rng.randint(1, 8)
    else:
        end = min(len(buf), pos + rng.randint(4, 64))
        buf[pos:end] = bytes(end - pos)
    return bytes(buf), f"bytes:{kind}@{pos}"


_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _number_mutation(data: bytes, rng: random.Random, limit: int | None = None) -> tuple[bytes, str]:
    """Replace a number in the (text part of the) file with an interesting value."""
    head = data if limit is None else data[:limit]
    matches = list(_NUMBER.finditer(head))
    if not matches:
        return _byte_mutation(data, rng)
    m = rng.choice(matches)
    value = rng.choice(INTERESTING_NUMBERS).encode()
    return data[:m.start()] + value + data[m.end():], f"number:{m.group().decode()}->{value.decode()}@{m.start()}"


def _ply_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    end = data.find(b"end_header\n") + len(b"end_header\n")
    header, body = data[:end], data[end:]
    kind = rng.choice(["count", "count", "comment_end", "type", "list_element", "numbers", "extra_rows"])
    if kind == "count":
        value = rng.choice([b"0", b"1", b"11", b"13", b"1000000", b"2000000000", b"99999999999999"])
        return re.sub(rb"element vertex \d+", b"element vertex " + value, header) + body, f"ply:count={value}"
    if kind == "comment_end":
        lines = header.split(b"\n")
        lines.insert(2, b"comment end_header")
        fake = b"\n".join(lines)
        return re.sub(rb"element vertex \d+", b"element vertex 4000000000", fake) + body, "ply:comment end_header"
    if kind == "type":
        types = [b"float", b"double", b"uchar", b"int", b"short", b"list uchar int"]
        return re.sub(rb"property float (\w+)", lambda m: b"property " + rng.choice(types) + b" " + m.group(1),
                      header, count=1) + body, "ply:property type"
    if kind == "list_element":
        rows = rng.choice([10, 100_000, 5_000_000])
        extra = f"element face {rows}\nproperty list uchar int vertex_indices\n".encode()
        return header.replace(b"end_header\n", extra + b"end_header\n") + body + bytes(rows if rows < 200_000 else 0), \
            f"ply:face list {rows}"
    if kind == "extra_rows":
        return header + body + body[: max(1, len(body) // 3)], "ply:extra body rows"
    return _number_mutation(data, rng, None if b"ascii" in header else end)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _png_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Rewrite IHDR (size, bit depth, colour type) with a valid CRC, or append a zlib bomb of zeros."""
    if not data.startswith(b"\x89PNG") or rng.random() < 0.3:
        return _byte_mutation(data, rng)
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    kind = rng.choice(["size", "depth", "bomb"])
    if kind == "size":
        width, height = rng.choice([(6000, 6000), (50000, 50000), (1, 1), (0, 5), (100000, 1), (2**31 - 1, 2)])
    elif kind == "depth":
        depth, colour = rng.choice([(16, 0), (16, 2), (8, 0), (1, 0), (16, 6), (8, 4), (8, 3)])
    else:
        width, height, depth, colour = 6000, 6000, 8, 2
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    out = data[:8] + ihdr + data[33:]
    if kind == "bomb":
        raw = zlib.compress(bytes((width * 3 + 1) * height), 9)
        idat_start = out.find(b"IDAT") - 4
        out = out[:idat_start] + _png_chunk(b"IDAT", raw) + _png_chunk(b"IEND", b"")
    return out, f"png:{kind} {width}x{height} depth {depth} colour {colour}"


def _npy_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    header_end = data.find(b"\n", 10) + 1
    if rng.random() < 0.5:
        shape = rng.choice([b"(300000, 40000)", b"(24, 32)", b"(0,)", b"(24, 32, 1)", b"()", b"(-1, 5)"])
        out = re.sub(rb"\(\d+, \d+\)", shape, data[:header_end], count=1)
        return out + data[header_end:], f"npy:shape {shape.decode()}"
    if rng.random() < 0.3:
        descr = rng.choice([b"'|O'", b"'<f8'", b"'<u2'", b"'|b1'", b"'<c8'"])
        return re.sub(rb"'<f4'", descr, data[:header_end]) + data[header_end:], f"npy:descr {descr.decode()}"
    return _byte_mutation(data, rng)


def _json_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    kind = rng.choice(["number", "number", "deep", "type", "bytes", "big"])
    if kind == "number":
        return _number_mutation(data, rng)
    if kind == "deep":
        depth = rng.choice([100, 5000, 200000])
        return b"[" * depth + b"]" * depth, f"json:nested {depth}"
    if kind == "type":
        doc = json.loads(data)
        key = rng.choice(list(doc))
        doc[key] = rng.choice([{"a": 1}, "text", None, [], [[1, 2], [3]], True, 1e39])
        return json.dumps(doc).encode(), f"json:{key} -> {doc[key]!r}"
    if kind == "big":
        doc = json.loads(data)
        doc["width"], doc["height"] = rng.choice([(100000, 100000), (0, 0), (32, -5), (1.5, 2)])
        return json.dumps(doc).encode(), f"json:size {doc['width']}x{doc['height']}"
    return _byte_mutation(data, rng)


def _zip_member_mutation(data: bytes, rng: random.Random, member_suffix: str) -> tuple[bytes, str]:
    """Mutate one member of a zip (torch.save files) and write a valid zip again."""
    try:
        src = zipfile.ZipFile(io.BytesIO(data))
        names = src.namelist()
    except zipfile.BadZipFile:
        return _byte_mutation(data, rng)
    targets = [n for n in names if n.endswith(member_suffix)] or names
    target = rng.choice(targets)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name in names:
            payload = src.read(name)
            if name == target:
                mutator = _pickle_mutation if name.endswith(".pkl") else _byte_mutation
                payload, what = mutator(payload, rng)
            dst.writestr(name, payload)
    return out.getvalue(), f"zip:{target.split('/')[-1]} {what}"


def _pickle_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Shapes in a pickle are BININT/BININT1 operands: rewrite small integers to huge ones, or flip bytes."""
    if rng.random() < 0.5:
        positions = [i for i in range(len(data) - 1) if data[i] == 0x4B]  # BININT1 <byte>
        if positions:
            i = rng.choice(positions)
            value = rng.choice([0x7FFFFFFF, 100_000, 0, 65536])
            return data[:i] + b"J" + struct.pack("<i", value) + data[i + 2:], f"pickle:BININT1@{i}->{value}"
    return _byte_mutation(data, rng)


def _safetensors_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if len(data) < 8 or rng.random() < 0.3:
        return _byte_mutation(data, rng)
    (size,) = struct.unpack("<Q", data[:8])
    header = data[8:8 + size]
    kind = rng.choice(["numbers", "dtype", "meta"])
    if kind == "dtype":
        new = header.replace(b'"F32"', rng.choice([b'"F8_E4M3"', b'"BOOL"', b'"I64"', b'"F16"', b'"U8"']), 1)
    elif kind == "meta":
        meta = rng.choice([b'"times":"' + b"[" * 100000 + b'"', b'"info":"[{\\"image_size\\": [0, 0]}]"',
                           b'"times":"[0.0, 1.0]"', b'"meters_per_unit":"\\"x\\""', b'"frame":"z_up"'])
        new = re.sub(rb'"times":"[^"]*"', lambda _: meta, header, count=1)
    else:
        new, _ = _number_mutation(header, rng)
    new = new + b" " * ((8 - len(new) % 8) % 8)
    return struct.pack("<Q", len(new)) + new + data[8 + size:], f"safetensors:{kind}"


def _usd_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if not data.startswith(b"#usda"):
        return _byte_mutation(data, rng)
    kind = rng.choice(["numbers", "numbers", "external", "bomb", "tcps", "projective", "bytes"])
    text = data.decode("utf-8", errors="replace")
    if kind == "external":
        asset = rng.choice(["/etc/passwd", "../outside.usda", "/tmp/elsewhere.usda", "https://example.com/x.usda"])
        arc = rng.choice(["references", "payload"])
        text = text.replace('def Xform "World"\n', f'def Xform "World" (\n    {arc} = @{asset}@\n)\n', 1)
        if "subLayers" not in text and rng.random() < 0.5:
            text = text.replace("(\n", f"(\n    subLayers = [@{asset}@]\n", 1)
    elif kind == "bomb":
        levels = ['def "L0"\n{\n    def "leaf"\n    {\n    }\n}\n']
        for i in range(1, 24):
            levels.append(f'def "L{i}"\n{{\n    def "a" (\n        references = </L{i - 1}>\n    )\n    {{\n    }}\n'
                          f'    def "b" (\n        references = </L{i - 1}>\n    )\n    {{\n    }}\n}}\n')
        text += "\n" + "\n".join(levels)
    elif kind == "tcps":
        text = text.replace("(\n", f"(\n    timeCodesPerSecond = {rng.choice(['0', '-24', '1e-300'])}\n", 1)
        text = re.sub(r"point3f\[\] positions = ", "point3f[] positions.timeSamples = { 0: ", text, count=1)
        text = re.sub(r"(positions.timeSamples = \{ 0: \[[^\]]*\])", r"\1 }", text, count=1)
    elif kind == "projective":
        text = text.replace('def ParticleField3DGaussianSplat "Gaussians"\n    {\n',
                            'def ParticleField3DGaussianSplat "Gaussians"\n    {\n        matrix4d xformOp:transform = '
                            '( (1, 0, 0, 0.5), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1) )\n'
                            '        uniform token[] xformOpOrder = ["xformOp:transform"]\n', 1)
    elif kind == "numbers":
        return _number_mutation(data, rng)
    else:
        return _byte_mutation(data, rng)
    return text.encode(), f"usd:{kind}"


_SPZ_MAGIC = 0x5053474E


def _spz_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Header counts, versions, trailing data and zstd bombs of SPZ v3 (gzip) and v4 (zstd stream table)."""
    import gzip

    if data[:2] == b"\x1f\x8b":
        raw = bytearray(gzip.decompress(data))
        kind = rng.choice(["count", "version", "degree", "trailing", "truncate", "zero_count_trailing"])
        if kind == "count":
            struct.pack_into("<I", raw, 8, rng.choice([0, 1, 11, 13, 100_000, 2**31, 2**32 - 1]))
        elif kind == "version":
            struct.pack_into("<I", raw, 4, rng.choice([0, 4, 99]))
        elif kind == "degree":
            raw[12] = rng.choice([4, 7, 255])
        elif kind == "trailing":
            raw += bytes(rng.choice([1, 1000, 1 << 20, 16 << 20]))
        elif kind == "truncate":
            del raw[rng.randrange(16, len(raw)):]
        else:
            struct.pack_into("<I", raw, 8, 0)
            raw += bytes(rng.choice([1 << 20, 64 << 20]))
        return gzip.compress(bytes(raw), 9), f"spz3:{kind}"
    if len(data) < 32 or struct.unpack_from("<I", data)[0] != _SPZ_MAGIC:
        return _byte_mutation(data, rng)
    import zstandard

    buf = bytearray(data)
    count, streams, toc = struct.unpack_from("<I", buf, 8)[0], buf[15], struct.unpack_from("<I", buf, 16)[0]
    kind = rng.choice(["count", "toc_sizes", "trailing", "corrupt_stream", "bomb", "streams"])
    if kind == "count":
        struct.pack_into("<I", buf, 8, rng.choice([0, 1, count + 1, 10**8, 2**32 - 1]))
    elif kind == "toc_sizes" and streams:
        i = rng.randrange(streams)
        struct.pack_into("<Q", buf, toc + 16 * i + rng.choice([0, 8]), rng.choice([0, 1, 2**40, 2**63]))
    elif kind == "trailing":
        buf += bytes(rng.choice([1, 4096]))
    elif kind == "corrupt_stream":
        start = toc + 16 * streams
        for _ in range(rng.randint(1, 6)):
            buf[rng.randrange(start, len(buf))] ^= 0xFF
    elif kind == "bomb":  # a few KB of zstd that inflate to gigabytes, with a header that agrees
        n = rng.choice([10**7, 2 * 10**8])
        sizes = [9 * n, n, 3 * n, 3 * n, 4 * n]
        parts = [zstandard.ZstdCompressor(level=19).compress(bytes(1 << 16)) for _ in sizes]
        head = struct.pack("<IIIBBBBI", _SPZ_MAGIC, 4, n, 0, 12, 0, len(sizes), 32) + bytes(12)
        table = b"".join(struct.pack("<QQ", len(c), size) for c, size in zip(parts, sizes, strict=True))
        return head + table + b"".join(parts), f"spz4:bomb {n}"
    else:
        buf[15] = rng.choice([0, 1, 5, 6, 255])
    return bytes(buf), f"spz4:{kind}"


def _splat_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Whole or partial records, NaN positions, zero quaternions."""
    buf = bytearray(data)
    kind = rng.choice(["partial", "nan", "zero_quat", "empty", "many"])
    if kind == "partial":
        return bytes(buf[:-rng.randint(1, 31)]), "splat:partial record"
    if kind == "nan":
        struct.pack_into("<f", buf, 32 * rng.randrange(len(buf) // 32) + 4 * rng.randrange(6), float("nan"))
    elif kind == "zero_quat":
        i = rng.randrange(len(buf) // 32)
        buf[32 * i + 28:32 * i + 32] = bytes([128] * 4)
    elif kind == "empty":
        return b"", "splat:empty"
    else:
        return bytes(buf) * rng.choice([10, 1000]), "splat:many records"
    return bytes(buf), f"splat:{kind}"


_HOSTILE_INFO = [("image_size", 5), ("image_size", [0, 0]), ("image_size", ["a", "b"]), ("image_size", [[32], 24]),
                 ("image_size", [1e309, 24]), ("image_size", [7680, 4320]), ("image_size", [100000, 100000]),
                 ("image_size", [32]), ("image_size", {"w": 32}), ("image_size", [True, 24]),
                 ("intrinsics", [[1e-300, 0, 16], [0, 1e-300, 12], [0, 0, 1]]), ("intrinsics", "K"),
                 ("intrinsics", [[30, 0, 16], [0, 30, 12]]), ("intrinsics", [[0, 0, 16], [0, 30, 12], [0, 0, 1]]),
                 ("intrinsics", [[30, 0, 16], [0, 30, 12], [0, 0, 0]]), ("alignment", {"camera_to_world": 3}),
                 ("target_frame", "x"), ("completion", []), ("input_notes", [1, 2])]


def _info_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Hostile world info: the lyra_sim_info / lyra_sim comments of a PLY, the info metadata of a native file."""
    field_name, value = rng.choice(_HOSTILE_INFO)
    if data.startswith(b"ply"):
        end = data.find(b"end_header\n")
        header, body = data[:end], data[end:]
        kind = rng.choice(["info", "info", "scale", "frame"])
        if kind == "scale":
            bad = rng.choice([b"abc", b"-1", b"nan", b"inf", b"0", b"1e999"])
            return re.sub(rb"meters_per_unit=\S+", b"meters_per_unit=" + bad, header) + body, f"info:mpu {bad}"
        if kind == "frame":
            return re.sub(rb"frame=\S+", b"frame=sideways", header) + body, "info:frame"
        match = re.search(rb"comment lyra_sim_info (.*)\n", header)
        info = json.loads(match.group(1))
        info[field_name] = value
        text = json.dumps(info).encode()
        return header[:match.start(1)] + text + header[match.end(1):] + body, f"info:{field_name}={value!r}"
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    meta = header["__metadata__"]
    kind = rng.choice(["info", "info", "times"])
    if kind == "times":
        meta["times"] = rng.choice(["[NaN]", "[Infinity]", "[\"a\"]", "[0, 1]", "[]"])
    else:
        infos = json.loads(meta["info"])
        infos[0][field_name] = value
        meta["info"] = json.dumps(infos)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + size:], f"native info:{kind} {field_name}={value!r}"


def mutate(reader: str, data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One hostile variant of a seed file for ``reader``, with a short description of the mutation."""
    if rng.random() < 0.2:
        return _byte_mutation(data, rng)
    try:
        return _format_mutation(reader, data, rng)
    except Exception:  # a seed already mangled by an earlier mutation: fall back to bytes
        return _byte_mutation(data, rng)


def _format_mutation(reader: str, data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if reader == "ply":
        return _ply_mutation(data, rng)
    if reader == "image" or (reader == "depth" and data.startswith(b"\x89PNG")):
        return _png_mutation(data, rng)
    if reader == "depth":
        return _npy_mutation(data, rng)
    if reader in ("intrinsics", "camera_path"):
        return _json_mutation(data, rng)
    if reader == "latent":
        return _zip_member_mutation(data, rng, ".pkl")
    if reader == "native":
        return _safetensors_mutation(data, rng)
    if reader == "usd":
        return _usd_mutation(data, rng)
    if reader == "splat_formats":
        if data[:2] == b"\x1f\x8b" or data[:4] == struct.pack("<I", _SPZ_MAGIC):
            return _spz_mutation(data, rng)
        if not data.startswith(b"ply"):
            return _splat_mutation(data, rng)
    if reader == "world_info":
        return _info_mutation(data, rng)
    return _byte_mutation(data, rng)


# --------------------------------------------------------------------------------------------- capture folders
_CAPTURE_FRAMES, _CAPTURE_SIZE = 3, (32, 24)


def capture_images(folder: Path, names: list[str], depth_mm: int = 1500) -> None:
    from PIL import Image

    rng = np.random.default_rng(len(names))
    w, h = _CAPTURE_SIZE
    for sub in ("rgb", "depth"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(folder / "rgb" / f"{name}.png")
        depth = np.full((h, w), depth_mm, np.uint16)
        depth[6:18, 8:24] = depth_mm - 300  # a box in front of a wall
        Image.fromarray(depth).save(folder / "depth" / f"{name}.png")


def make_capture_template(folder: Path, layout: str) -> Path:
    """A valid 3-frame 32x24 capture folder (TUM or plain layout) with intrinsics and poses."""
    names = [f"{i:04d}" for i in range(_CAPTURE_FRAMES)]
    capture_images(folder, names, 1500 * (5 if layout == "tum" else 1))
    (folder / "intrinsics.json").write_text(json.dumps({"fx": 30.0, "fy": 30.0, "cx": 16.0, "cy": 12.0}))
    poses = [np.eye(4) for _ in names]
    for i, m in enumerate(poses):
        m[0, 3] = 0.01 * i
    if layout == "tum":
        stamps = [f"{1.0 + i / 30:.6f}" for i in range(len(names))]
        for kind in ("rgb", "depth"):
            (folder / f"{kind}.txt").write_text("# list\n" + "".join(f"{t} {kind}/{n}.png\n"
                                                                     for t, n in zip(stamps, names, strict=True)))
        (folder / "groundtruth.txt").write_text("".join(f"{t} {0.01 * i} 0 0 0 0 0 1\n" for i, t in enumerate(stamps)))
    else:
        (folder / "poses.json").write_text(json.dumps([m.tolist() for m in poses]))
    return folder


def _make_outside(root: Path) -> Path:
    """Files outside every capture that an escaping capture could use (valid images, intrinsics)."""
    outside = root / "outside"
    if not outside.exists():
        make_capture_template(outside, "plain")
        (outside / "secret.txt").write_text("SECRET-LINE-DO-NOT-ECHO 1 2 3\n")
    return outside


_CAPTURE_MUTATIONS = ["escape_list", "absolute_list", "symlink_frame", "symlink_dir", "symlink_intrinsics",
                      "symlink_list", "binary_list", "all_invalid_depth", "depth_scale", "pose_json", "pose_dup",
                      "pose_bottom_row", "long_list", "text_bytes", "text_number", "one_frame", "proc_link",
                      "loop_link"]


def make_capture_case(folder: Path, root: Path, rng: random.Random) -> tuple[str, str]:
    """One hostile capture folder; (mutation, forbidden text) where a mutation reaching outside must be refused and
    its error must not contain the forbidden text."""
    import shutil

    outside = _make_outside(root)
    layout = rng.choice(["tum", "plain"])
    template = root / f"template_{layout}"
    if not template.exists():
        make_capture_template(template, layout)
    shutil.copytree(template, folder, symlinks=True)
    kind = rng.choice(_CAPTURE_MUTATIONS)
    lists = [folder / "rgb.txt", folder / "depth.txt"] if layout == "tum" else []
    texts = [*lists, folder / "intrinsics.json", folder / ("groundtruth.txt" if layout == "tum" else "poses.json")]
    forbidden = "SECRET-LINE"
    if kind in ("escape_list", "absolute_list") and lists:
        target = rng.choice(lists)
        sub = "rgb" if target.name == "rgb.txt" else "depth"
        entry = f"../outside/{sub}/0000.png" if kind == "escape_list" else str(outside / sub / "0000.png")
        lines = target.read_text().splitlines()
        lines[1] = lines[1].split()[0] + " " + entry
        target.write_text("\n".join(lines) + "\n")
    elif kind == "symlink_frame":
        sub = rng.choice(["rgb", "depth"])
        (folder / sub / "0000.png").unlink()
        (folder / sub / "0000.png").symlink_to(outside / sub / "0000.png")
    elif kind == "symlink_dir":
        sub = rng.choice(["rgb", "depth"])
        shutil.rmtree(folder / sub)
        (folder / sub).symlink_to(outside / sub)
    elif kind == "symlink_intrinsics":
        (folder / "intrinsics.json").unlink()
        (folder / "intrinsics.json").symlink_to(outside / "intrinsics.json")
    elif kind == "symlink_list" and lists:
        target = rng.choice(lists)
        target.unlink()
        target.symlink_to(rng.choice([outside / "secret.txt", Path("/etc/passwd")]))
        forbidden = "SECRET-LINE" if "secret" in str(target.resolve()) else "root:"
    elif kind == "binary_list":
        rng.choice(texts).write_bytes(bytes(rng.randrange(256) for _ in range(200)) + b"\x00\xff")
    elif kind == "all_invalid_depth":
        capture_images(folder, [f"{i:04d}" for i in range(_CAPTURE_FRAMES)], 65535)
    elif kind == "depth_scale":
        value = rng.choice(["{}", "1" * 400, '"abc"', "-1", "1e999", "0", "[5000]", "true"])
        head = '{"fx": 30, "fy": 30, "cx": 16, "cy": 12, "depth_scale": '
        (folder / "intrinsics.json").write_text(head + value + "}")
    elif kind in ("pose_json", "pose_bottom_row", "pose_dup"):
        if layout == "plain":
            poses = json.loads((folder / "poses.json").read_text())
            if kind == "pose_json":
                hostile = [{}, [], "x", [[1, 2], [3]], None, [[float("nan")] * 4] * 4]
                poses[rng.randrange(len(poses))] = rng.choice(hostile)
            else:
                poses[1][3] = [0.0, 0.0, 0.5, 1.0]
            (folder / "poses.json").write_text(json.dumps(poses))
        else:
            lines = (folder / "groundtruth.txt").read_text().splitlines()
            lines[1] = lines[0] if kind == "pose_dup" else lines[1].replace(" 1", " nan")
            (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    elif kind == "long_list" and lists:
        target = rng.choice(lists)
        sub = "rgb" if target.name == "rgb.txt" else "depth"
        count = rng.choice([100_000, 300_000])
        target.write_text("".join(f"{1.0 + i / 30:.6f} {sub}/{i % _CAPTURE_FRAMES:04d}.png\n" for i in range(count)))
    elif kind == "text_bytes":
        target = rng.choice(texts)
        target.write_bytes(_byte_mutation(target.read_bytes(), rng)[0])
    elif kind == "text_number":
        target = rng.choice(texts)
        target.write_bytes(_number_mutation(target.read_bytes(), rng)[0])
    elif kind == "one_frame":
        for sub in ("rgb", "depth"):
            for p in sorted((folder / sub).iterdir())[1:]:
                p.unlink()
        for p in [*lists, folder / "groundtruth.txt", folder / "poses.json"]:
            if p.exists() and p in lists:
                p.write_text("".join(p.read_text().splitlines(keepends=True)[:2]))
            elif p.exists():
                p.unlink()
    elif kind == "proc_link":
        (folder / "intrinsics.json").unlink()
        (folder / "intrinsics.json").symlink_to("/proc/self/status")
    elif kind == "loop_link":
        (folder / "intrinsics.json").unlink()
        (folder / "intrinsics.json").symlink_to(folder / "intrinsics.json")
    else:
        kind = "unchanged"
    escaping = kind in ("escape_list", "absolute_list", "symlink_frame", "symlink_dir", "symlink_intrinsics",
                        "symlink_list", "proc_link", "loop_link")
    return f"capture:{layout} {kind}", forbidden if escaping else ""


# --------------------------------------------------------------------------------------------- readers (worker)
def _read(reader: str, path: Path):
    """Run one reader on ``path`` the way users reach it."""
    if reader in ("ply", "native", "usd", "splat_formats"):
        from lyra_sim.io import load_world

        world = load_world(path)
        return len(world)
    if reader == "image":
        from lyra_sim.inputs.images import load_image

        return load_image(path).rgb.shape
    if reader == "depth":
        from lyra_sim.inputs.images import load_depth

        return load_depth(path, (24, 32)).shape
    if reader == "intrinsics":
        from lyra_sim.inputs.images import load_intrinsics

        return load_intrinsics(path, 32, 24).shape
    if reader == "camera_path":
        from lyra_sim.views.paths import load_camera_file

        return len(load_camera_file(path, width=32, height=24))
    if reader == "world_info":  # what `lyra-sim render` does with a world's info (CLI: errors name the world)
        from lyra_sim.errors import LyraSimError
        from lyra_sim.io import load_world
        from lyra_sim.views.paths import world_camera_path

        world = load_world(path)
        try:
            return len(world_camera_path(world, "fly", None, None, 2))
        except LyraSimError as exc:
            raise type(exc)(f"{path}: {exc}") from exc
    if reader == "capture":
        from lyra_sim.capture.pipeline import reconstruct_sequence
        from lyra_sim.inputs.sequence import read_sequence

        poses = next((path / n for n in ("groundtruth.txt", "poses.json") if (path / n).exists()), None)
        seq = read_sequence(path, poses=poses)
        return len(reconstruct_sequence(seq, progress=False).world)
    if reader == "latent":
        from lyra_sim.lyra.gen3c_dir import load_teacher_latent

        return tuple(load_teacher_latent(path).shape)
    if reader.startswith("selftest_"):  # readers that misbehave on purpose: the harness must catch each
        return _SELFTESTS[reader](path)
    raise KeyError(reader)


def _selftest_memory(path: Path):
    return bytearray(8 << 30)


def _selftest_timeout(path: Path):
    while True:
        pass


def _selftest_crash(path: Path):
    os.kill(os.getpid(), 9)


_SELFTESTS = {"selftest_exception": lambda path: {}[path], "selftest_unnamed": lambda path: _raise_unnamed(),
              "selftest_memory": _selftest_memory, "selftest_timeout": _selftest_timeout,
              "selftest_crash": _selftest_crash}


def _raise_unnamed():
    from lyra_sim.errors import LyraSimError

    raise LyraSimError("something is wrong with some file")


def _peak_rss_reset() -> None:
    with contextlib.suppress(OSError):  # resets VmHWM (the peak resident size) on Linux
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class _CaseTimeout(BaseException):
    pass


def worker_main() -> None:
    """Read cases from stdin, answer one JSON line each: outcome, error type, message, time, peak memory."""
    import resource
    import signal
    import warnings

    from lyra_sim.errors import LyraSimError

    warnings.simplefilter("ignore")
    for module in ("lyra_sim.io", "lyra_sim.inputs.images", "lyra_sim.lyra.gen3c_dir", "lyra_sim.views.paths",
                   "usd_exporters.stage_io", "lyra_sim.inputs.sequence", "lyra_sim.capture.pipeline"):
        with contextlib.suppress(ImportError):
            __import__(module)
    headroom = int(os.environ.get("FUZZ_MEMORY_HEADROOM", MEMORY_HEADROOM))

    def alarm(signum, frame):
        raise _CaseTimeout

    signal.signal(signal.SIGALRM, alarm)
    for reader, seed in json.loads(os.environ.get("FUZZ_WARMUP", "[]")):  # JIT compilation (numba) is not
        with contextlib.suppress(Exception):                              # a cost of the hostile file
            _read(reader, Path(seed))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        case = json.loads(line)
        path = Path(case["path"])
        # Soft limit only, reset per case: each case may add `headroom` of address space to what the worker has
        # mapped so far (earlier cases grow malloc arenas; the hard limit stays where it was).
        resource.setrlimit(resource.RLIMIT_AS, (_vm_bytes() + headroom, resource.getrlimit(resource.RLIMIT_AS)[1]))
        _peak_rss_reset()
        base = _rss_bytes()
        start = time.perf_counter()
        result = {"outcome": "ok", "error": "", "message": ""}
        signal.setitimer(signal.ITIMER_REAL, case.get("timeout", CASE_TIMEOUT_S))
        try:
            _read(case["reader"], path)
        except _CaseTimeout:
            limit = case.get("timeout", CASE_TIMEOUT_S)
            result = {"outcome": "timeout", "error": "timeout", "message": f"over {limit} s"}
        except MemoryError as exc:
            result = {"outcome": "memory", "error": "MemoryError", "message": str(exc)[:300]}
        except LyraSimError as exc:
            message = str(exc)
            named = path.name in message
            result = {"outcome": "clean" if named else "unnamed", "error": type(exc).__name__,
                      "message": message[:300]}
        except BaseException as exc:  # every other exception is what the fuzzer looks for
            where = traceback.extract_tb(exc.__traceback__)[-1]
            result = {"outcome": "exception", "error": type(exc).__name__,
                      "message": f"{str(exc)[:240]} (at {Path(where.filename).name}:{where.lineno})"}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        result["seconds"] = time.perf_counter() - start
        result["peak_bytes"] = max(0, _peak_rss_bytes() - base)
        print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------- driver
@dataclass
class Case:
    reader: str
    path: Path
    mutation: str
    size: int
    timeout: float = CASE_TIMEOUT_S
    seed: Path | None = None  # the valid file it was derived from (read once per worker to warm up JIT code)
    forbidden: str = ""  # a capture reaching outside itself: must be refused, and the error must not hold this


@dataclass
class ReaderReport:
    cases: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    worst_seconds: float = 0.0
    worst_peak_bytes: int = 0
    worst_case: str = ""


FAILING = ("exception", "unnamed", "timeout", "memory", "crash", "escaped", "leaked")


def make_cases(folder: Path, counts: dict[str, int], seed: int = 0) -> list[Case]:
    """``counts[reader]`` mutated files per reader, written under ``folder``."""
    seeds = make_seeds(folder / "seeds")
    rng = random.Random(seed)
    cases = []
    for reader, count in counts.items():
        if reader == "capture":
            for i in range(count):
                path = folder / reader / f"{i:05d}_capture"
                mutation, forbidden = make_capture_case(path, folder / "capture_sources", rng)
                seed = folder / "capture_sources" / f"template_{mutation.split()[0].split(':')[1]}"
                cases.append(Case(reader, path, mutation, 0, seed=seed, forbidden=forbidden))
            continue
        sources = seeds.get(reader) or []
        if not sources:
            continue
        for i in range(count):
            source = sources[i % len(sources)]
            data, what = mutate(reader, source.read_bytes(), rng)
            if rng.random() < 0.15:  # stack a second mutation now and then
                data, second = mutate(reader, data, rng)
                what += " + " + second
            path = folder / reader / f"{i:05d}_{source.stem}{source.suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            cases.append(Case(reader, path, what, len(data), seed=source))
    return cases


class _Worker:
    def __init__(self, env: dict):
        self.proc = subprocess.Popen([sys.executable, __file__, "worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self._expect_line(300.0)

    def _expect_line(self, timeout: float) -> dict | None:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                line = self.proc.stdout.readline()
                sel.close()
                if not line:  # end of output: the worker died
                    self.proc.wait(timeout=30)
                    return None
                return json.loads(line)
        sel.close()
        return None

    def run(self, case: Case) -> dict:
        request = {"reader": case.reader, "path": str(case.path), "timeout": case.timeout}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self._expect_line(case.timeout + 10.0)
        if answer is None:
            dead = self.proc.poll() is not None
            self.close()
            return {"outcome": "crash" if dead else "timeout", "error": "worker died" if dead else "hung",
                    "message": "", "seconds": CASE_TIMEOUT_S, "peak_bytes": 0}
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def run_cases(cases: list[Case], progress=None) -> dict[str, ReaderReport]:
    """Run every case in a worker subprocess (restarted after a crash or hang); a report per reader."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["FUZZ_WARMUP"] = json.dumps(sorted({(c.reader, str(c.seed)) for c in cases if c.seed is not None}))
    reports: dict[str, ReaderReport] = {}
    worker = None
    try:
        for case in cases:
            if worker is None or worker.proc.poll() is not None:
                worker = _Worker(env)
            result = worker.run(case)
            if result["outcome"] in ("crash", "timeout") and result["error"] in ("worker died", "hung"):
                worker = None
            if case.forbidden and result["outcome"] == "ok":
                result = {**result, "outcome": "escaped", "error": "read outside the capture"}
            elif case.forbidden and case.forbidden in result["message"]:
                result = {**result, "outcome": "leaked", "error": "echoed an outside file"}
            report = reports.setdefault(case.reader, ReaderReport())
            report.cases += 1
            report.outcomes[result["outcome"]] = report.outcomes.get(result["outcome"], 0) + 1
            if result["outcome"] in FAILING:
                report.failures.append({"path": str(case.path), "mutation": case.mutation, **result})
            if case.size < 1 << 20:
                if result["seconds"] > report.worst_seconds:
                    report.worst_seconds = result["seconds"]
                    report.worst_case = f"{case.path.name} ({case.mutation})"
                report.worst_peak_bytes = max(report.worst_peak_bytes, result["peak_bytes"])
            if progress is not None:
                progress.update(1)
    finally:
        if worker is not None:
            worker.close()
    return reports


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        worker_main()
    else:
        sys.exit("usage: fuzzing.py worker")
