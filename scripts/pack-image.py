#!/usr/bin/env python3
"""Packs files into a one-layer docker-archive (the `docker save` format) with
no other tool: the sample image of `make demo` and the base of `make image`.
Deterministic: fixed mtimes, owners and key order.

usage: pack-image.py OUT.tar NAME:TAG SRC:DEST[:MODE]... [--entrypoint JSON] [--cmd JSON]
       [--env K=V]... [--label K=V]...
"""
import argparse, hashlib, io, json, tarfile

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("name")
ap.add_argument("files", nargs="+", help="SRC:DEST[:MODE], DEST relative to /")
ap.add_argument("--entrypoint", type=json.loads)
ap.add_argument("--cmd", type=json.loads)
ap.add_argument("--env", action="append", default=[])
ap.add_argument("--label", action="append", default=[])
args = ap.parse_args()

def member(tar, path, data=None, mode=0o644):
    info = tarfile.TarInfo(path)
    info.mode, info.mtime, info.uid, info.gid = mode, 0, 0, 0
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.USTAR_FORMAT) as t:
    dirs = set()
    for spec in args.files:
        src, dest, *mode = spec.split(":")
        parts = dest.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i]) + "/"
            if d not in dirs:
                dirs.add(d)
                member(t, d, mode=0o755)
        member(t, "/".join(parts), open(src, "rb").read(), int(mode[0], 8) if mode else 0o644)
layer = layer.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
config = {"Env": args.env or ["PATH=/usr/local/bin:/usr/bin:/bin"]}
if args.entrypoint is not None:
    config["Entrypoint"] = args.entrypoint
if args.cmd is not None:
    config["Cmd"] = args.cmd
if args.label:
    config["Labels"] = dict(l.split("=", 1) for l in args.label)
config = json.dumps({
    "architecture": "amd64", "os": "linux", "config": config,
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "scripts/pack-image.py"}],
}, separators=(",", ":")).encode()
config_name = hashlib.sha256(config).hexdigest() + ".json"
layer_name = diff_id[7:] + ".tar"
manifest = json.dumps([{"Config": config_name, "RepoTags": [args.name], "Layers": [layer_name]}]).encode()
with tarfile.open(args.out, mode="w", format=tarfile.USTAR_FORMAT) as t:
    member(t, layer_name, layer)
    member(t, config_name, config)
    member(t, "manifest.json", manifest)
