#!/usr/bin/env python3
"""Packs a single static binary into a docker-archive (the `docker save`
format) with no other tool: the offline sample image for `make demo`.
Deterministic: fixed mtimes, owners and key order.

usage: make-image.py BINARY OUT.tar NAME:TAG
"""
import hashlib, io, json, sys, tarfile

binary, out, name = sys.argv[1:4]

def member(tar, path, data, mode=0o644):
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, 0, 0, 0
    tar.addfile(info, io.BytesIO(data))

layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.USTAR_FORMAT) as t:
    member(t, "showid", open(binary, "rb").read(), 0o755)
layer = layer.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Entrypoint": ["/showid"], "Cmd": ["hello", "from", "the", "sample"],
               "Env": ["PATH=/"], "Labels": {"org.opencontainers.image.title": "harden sample"}},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "testdata/sample/make-image.py"}],
}, separators=(",", ":")).encode()
config_name = hashlib.sha256(config).hexdigest() + ".json"
layer_name = diff_id[7:] + ".tar"
manifest = json.dumps([{"Config": config_name, "RepoTags": [name], "Layers": [layer_name]}]).encode()
with tarfile.open(out, mode="w", format=tarfile.USTAR_FORMAT) as t:
    member(t, layer_name, layer)
    member(t, config_name, config)
    member(t, "manifest.json", manifest)
