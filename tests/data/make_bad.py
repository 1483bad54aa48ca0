"""Write the bad-input corpus under tests/data/bad/ (small files, committed; rerun to regenerate).

    .venv/bin/python tests/data/make_bad.py

Layout: ``images/<case>/`` are image folders a run must refuse; ``odd_modes/`` holds images in every
mode that gankit converts as documented (see gankit.data.images.read_image); ``arrays/`` bad .npy/.npz
files; ``configs/`` bad YAML configs; ``tables/`` awkward CSV files; ``text/`` awkward text inputs.
Things that cannot be committed (a symlink loop, a pickle whose payload names a test folder, bad run
folders) are made at test time by tests/test_bad_input.py.
"""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent / "bad"


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def noise(mode: str, size: tuple[int, int] = (12, 12), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4, "LA": 2, "CMYK": 4}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if channels == 1 else arr, mode=mode)


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid-looking PNG header for a huge grey image with almost no data: a decompression bomb's
    signature, refused by Pillow's pixel limit before anything is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def images() -> None:
    ok = png_bytes(noise("L", seed=1))
    full = png_bytes(noise("RGB", (32, 32), seed=2))
    write(ROOT / "images/truncated_png/ok.png", ok)
    write(ROOT / "images/truncated_png/cut.png", full[: len(full) // 2])
    jpeg = io.BytesIO()
    noise("RGB", (32, 32), seed=3).save(jpeg, format="JPEG")
    data = bytearray(jpeg.getvalue())
    data[len(data) // 3 :] = b"\xff\xd9" + bytes(len(data) - len(data) // 3 - 2)  # body replaced, EOI early
    write(ROOT / "images/corrupt_jpeg/bad.jpg", bytes(data))
    write(ROOT / "images/text_as_png/notes.png", "these are notes, not a picture\n")
    write(ROOT / "images/zero_bytes/empty.png", b"")
    write(ROOT / "images/bomb/huge.png", png_claiming_size(100_000, 100_000))
    write(ROOT / "images/not_image/ok.png", ok)
    write(ROOT / "images/not_image/table.csv", "a,b\n1,2\n")
    write(ROOT / "images/empty/.gitkeep", "")


def odd_modes() -> None:
    """Every mode here is converted (documented in read_image): they must load, not be refused."""
    d = ROOT / "odd_modes"
    d.mkdir(parents=True, exist_ok=True)
    noise("L").save(d / "grey.png")
    noise("RGB").save(d / "rgb.png")
    noise("RGBA").save(d / "rgba.png")
    noise("LA").save(d / "grey_alpha.png")
    noise("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(d / "palette.png")
    pal = noise("RGB", seed=5).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal.save(d / "palette_transparent.png", transparency=0)
    noise("CMYK").save(d / "cmyk.jpg", format="JPEG")
    grey16 = (np.random.default_rng(6).integers(0, 65536, (12, 12))).astype(np.uint16)
    Image.fromarray(grey16).save(d / "grey16.png")  # mode I;16
    noise("L").convert("1").save(d / "bilevel.png")
    noise("RGB", (2, 2)).save(d / "tiny.png")  # smaller than any model: upscaled
    noise("RGB", (40, 5)).save(d / "wide.png")


def arrays() -> None:
    d = ROOT / "arrays"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    good = rng.standard_normal((40, 2)).astype(np.float32)
    write(d / "not_zip.npz", "this is not a zip archive")
    buf = io.BytesIO()
    np.savez(buf, x=good)
    write(d / "truncated.npz", buf.getvalue()[:200])
    np.savez(d / "object.npz", x=np.array([{"a": 1}, [1, 2]], dtype=object))  # stored as a pickle: refused
    bad = good.copy()
    bad[3, 1] = np.nan
    np.savez(d / "nan.npz", x=bad)
    np.save(d / "inf.npy", np.full((40, 2), np.inf, dtype=np.float32))
    np.savez(d / "no_arrays.npz")
    np.savez(d / "wrong_key.npz", points=good)
    np.save(d / "rank1.npy", np.arange(40.0))
    np.save(d / "complex.npy", good.astype(np.complex64))
    np.save(d / "strings.npy", np.array([["a", "b"]] * 40))
    np.savez(d / "labels_float.npz", x=good, labels=np.linspace(0, 1, 40))
    np.savez(d / "labels_out_of_range.npz", x=good, labels=np.arange(40) - 5)
    np.savez(d / "labels_wrong_length.npz", x=good, labels=np.zeros(7, dtype=np.int64))
    np.save(d / "one_row.npy", good[:1])
    np.save(d / "no_rows.npy", good[:0])
    np.save(d / "rank5.npy", np.zeros((4, 2, 3, 4, 5), dtype=np.float32))
    np.save(d / "images_4_channels.npy", np.zeros((40, 8, 8, 4), dtype=np.uint8))
    # a header claiming 10^12 rows over a few bytes of data
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 2), }"
    header += " " * (63 - len(header) % 64) + "\n"
    write(d / "huge_header.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64)
    write(d / "pickle.npy", b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.")  # {'a': 1}


CONFIGS = {
    "not_yaml.yaml": "train: {steps: 10\ndata: [",
    "top_level_list.yaml": "- train\n- data\n",
    "unknown_key.yaml": "train:\n  stpes: 10\n",
    "unknown_section.yaml": "trian:\n  steps: 10\n",
    "wrong_type.yaml": "train:\n  steps: ten\n",
    "section_not_mapping.yaml": "train: 5\n",
    "list_for_number.yaml": "opt_g:\n  lr: [0.1, 0.2]\n",
    "nan_lr.yaml": "opt_g:\n  lr: .nan\n",
    "inf_ema.yaml": "train:\n  ema: .inf\n",
    "negative_steps.yaml": "train:\n  steps: -5\n",
    "zero_batch.yaml": "data:\n  batch_size: 0\n",
    "bool_for_int.yaml": "data:\n  size: true\n",
    "bad_choice.yaml": "train:\n  nonfinite: ignore\n",
    "conflicting.yaml": "data:\n  batch_size: 63\nd:\n  pack: 2\n",
    "python_tag.yaml": "train: !!python/object/apply:os.system ['echo pwned']\n",
    "deep_nesting.yaml": "[" * 3000 + "]" * 3000 + "\n",
    "huge_int.yaml": "train:\n  ema: " + "9" * 400 + "\n",
}


def configs() -> None:
    for name, text in CONFIGS.items():
        write(ROOT / "configs" / name, text)
    write(ROOT / "configs/latin1.yaml", "train:\n  device: caf\xe9\n".encode("latin-1"))
    write(ROOT / "configs/binary.yaml", bytes(range(256)))


def tables() -> None:
    d = ROOT / "tables"
    write(d / "empty.csv", "")
    write(d / "header_only.csv", "age,city\n")
    write(d / "one_row.csv", "age,city\n31,Oslo\n")
    write(d / "all_missing.csv", "age,city\n" + ",\n" * 30)
    write(d / "constant.csv", "age,city\n" + "5,Oslo\n" * 30)
    write(d / "mixed_types.csv", "age,city\n" + "".join(f"{i if i % 3 else 'n/a'},Oslo\n" for i in range(30)))
    write(d / "bom.csv", "\ufeffage,city\n" + "".join(f"{20 + i},Oslo\n" for i in range(30)))
    write(d / "latin1.csv", ("age,city\n" + "".join(f"{20 + i},Malm\xf6\n" for i in range(30))).encode("latin-1"))
    write(d / "huge_cardinality.csv", "id,value\n" + "".join(f"user{i:05d},{i % 7}\n" for i in range(3000)))
    write(d / "ragged.csv", "a,b\n1,2\n3,4,5,6\n7\n")
    write(d / "binary.csv", bytes(range(256)) * 4)


def text() -> None:
    d = ROOT / "text"
    write(d / "empty.txt", "")
    write(d / "binary.txt", bytes(range(256)) * 4)
    write(d / "one_line.txt", "hello\n")
    write(d / "not_midi.mid", "MThd but not really a midi file")


def main() -> None:
    shutil.rmtree(ROOT, ignore_errors=True)
    for make in (images, odd_modes, arrays, configs, tables, text):
        make()
    files = [p for p in ROOT.rglob("*") if p.is_file()]
    print(f"wrote {len(files)} files, {sum(p.stat().st_size for p in files)} bytes under {ROOT}")


if __name__ == "__main__":
    main()
