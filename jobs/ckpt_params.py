"""The parameters of a one-process calm checkpoint as calm.safetensors.

A run checkpoint (src/checkpoint.h) stores each tensor with its AdamW moments
("NAME#adam_m", "NAME#adam_v") in part-00000.safetensors; a composition
directory wants the parameters alone. Usage: ckpt_params.py STEP_DIR OUT
(written to a temp file, fsync'd and renamed).
"""
import json
import os
import struct
import sys


def main(step_dir, out):
    path = os.path.join(step_dir, "part-00000.safetensors")
    if not os.path.exists(os.path.join(step_dir, "DONE")):
        sys.exit(f"ckpt_params.py: {step_dir} is not a complete checkpoint (no DONE)")
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    keep = sorted((k for k in header if k != "__metadata__" and "#" not in k),
                  key=lambda k: header[k]["data_offsets"][0])
    entries, chunks, at = {}, [], 0
    for k in keep:
        b, e = header[k]["data_offsets"]
        entries[k] = {"dtype": header[k]["dtype"], "shape": header[k]["shape"], "data_offsets": [at, at + e - b]}
        chunks.append(body[b:e])
        at += e - b
    entries["__metadata__"] = {"format": "pt"}
    head = json.dumps(entries).encode()
    head += b" " * (-len(head) % 8)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
