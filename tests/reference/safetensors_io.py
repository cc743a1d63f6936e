"""Hand-written safetensors reader and writer (no `safetensors` package on Debian).

File layout: 8-byte little-endian header length N, then N bytes of JSON
{"name": {"dtype": "BF16"|"F16"|"F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 "__metadata__": {...}}, then the raw little-endian tensor bytes; offsets are
relative to the first byte after the header.

Tensors are kept memory-mapped in their stored dtype and converted to float32 only
when asked for (an 8B checkpoint is 16 GB in bf16, 32 GB in fp32).
"""

import json
import os
import struct

import numpy as np

# stored dtype -> (numpy element type of the raw bytes, bytes per element)
_RAW_TYPES = {"BF16": (np.dtype("<u2"), 2), "F16": (np.dtype("<f2"), 2), "F32": (np.dtype("<f4"), 4)}


def bf16_bits_to_f32(bits):
    """uint16 bf16 bit patterns -> float32 (exact: bf16 is the top half of an fp32)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x):
    """float32 -> uint16 bf16 bit patterns, round to nearest even (finite inputs)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


class SafetensorsFile:
    """One .safetensors file, memory-mapped; tensors read on demand."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError(f"{path}: shorter than the 8-byte header length")
            (header_len,) = struct.unpack("<Q", head)
            size = os.fstat(f.fileno()).st_size
            if 8 + header_len > size:
                raise ValueError(f"{path}: header length {header_len} exceeds file size {size}")
            header = json.loads(f.read(header_len).decode("utf-8"))
        header.pop("__metadata__", None)
        data_len = size - 8 - header_len
        self.entries = {}
        for name, info in header.items():
            dtype = info["dtype"]
            if dtype not in _RAW_TYPES:
                raise ValueError(f"{path}: tensor {name} has unsupported dtype {dtype}")
            shape = tuple(int(s) for s in info["shape"])
            begin, end = (int(o) for o in info["data_offsets"])
            numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if end - begin != numel * _RAW_TYPES[dtype][1] or not 0 <= begin <= end <= data_len:
                raise ValueError(f"{path}: tensor {name} offsets {begin}..{end} do not match "
                                 f"shape {list(shape)} {dtype} (data section {data_len} bytes)")
            self.entries[name] = (dtype, shape, begin, end)
        self._data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len) \
            if data_len > 0 else np.zeros(0, np.uint8)

    def raw(self, name):
        """(dtype string, numpy array of the stored values, not converted)."""
        dtype, shape, begin, end = self.entries[name]
        raw_type = _RAW_TYPES[dtype][0]
        # a view into the mapping: nothing is read until it is converted
        arr = np.asarray(self._data[begin:end]).view(raw_type) if end > begin \
            else np.zeros(0, raw_type)
        return dtype, arr.reshape(shape)

    def f32(self, name, rows=None):
        """The tensor converted to a float32 numpy array; with rows (a list of indices
        into the first dimension), only those rows (an LM head's two rows, say)."""
        dtype, arr = self.raw(name)
        if rows is not None:
            arr = arr[np.asarray(rows, dtype=np.int64)]
        if dtype == "BF16":
            return bf16_bits_to_f32(arr)
        return arr.astype(np.float32)


class Checkpoint:
    """All tensors of a Hugging Face folder: model.safetensors, or the shards listed in
    model.safetensors.index.json ("weight_map": tensor name -> shard file name)."""

    def __init__(self, folder):
        index_path = os.path.join(folder, "model.safetensors.index.json")
        single_path = os.path.join(folder, "model.safetensors")
        self.files = {}
        self.where = {}  # tensor name -> SafetensorsFile
        if os.path.exists(index_path):
            with open(index_path, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
            for name, shard in weight_map.items():
                if shard not in self.files:
                    self.files[shard] = SafetensorsFile(os.path.join(folder, shard))
                if name not in self.files[shard].entries:
                    raise ValueError(f"{index_path}: {name} is mapped to {shard}, which lacks it")
                self.where[name] = self.files[shard]
        elif os.path.exists(single_path):
            st = SafetensorsFile(single_path)
            self.files["model.safetensors"] = st
            for name in st.entries:
                self.where[name] = st
        else:
            raise FileNotFoundError(f"{folder}: neither model.safetensors nor "
                                    f"model.safetensors.index.json")

    def __contains__(self, name):
        return name in self.where

    def names(self):
        return sorted(self.where)

    def shape(self, name):
        return self.where[name].entries[name][1]

    def dtype(self, name):
        return self.where[name].entries[name][0]

    def f32(self, name, rows=None):
        if name not in self.where:
            raise KeyError(f"checkpoint has no tensor {name}")
        return self.where[name].f32(name, rows)


def write_safetensors(path, tensors, dtype="BF16", metadata=None):
    """Write {name: float32 numpy array} converted to dtype ("BF16", "F16" or "F32")."""
    header = {}
    blobs = []
    offset = 0
    for name, value in tensors.items():
        value = np.asarray(value, dtype=np.float32)
        if dtype == "BF16":
            blob = f32_to_bf16_bits(value).tobytes()
        elif dtype == "F16":
            blob = value.astype("<f2").tobytes()
        elif dtype == "F32":
            blob = value.astype("<f4").tobytes()
        else:
            raise ValueError(f"unsupported dtype {dtype}")
        header[name] = {"dtype": dtype, "shape": list(value.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = metadata or {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # keep the data section 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
