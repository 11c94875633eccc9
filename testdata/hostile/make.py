#!/usr/bin/env python3
"""Writes the hostile-input corpus: small archives and layouts that harden
must refuse with a clear error. expected.tsv says which error, per file;
tests/offline.rs runs every case. Deterministic: run it again, same bytes.

usage: python3 testdata/hostile/make.py   (writes next to itself)
"""
import gzip, hashlib, io, json, os, tarfile

os.chdir(os.path.dirname(os.path.abspath(__file__)))

def sha(b): return hashlib.sha256(b).hexdigest()

def tar(path, members, fmt=tarfile.USTAR_FORMAT):
    """members: (name, bytes) | (name, ('symlink'|'hardlink', target)) | (name, TarInfo-tweak)"""
    with tarfile.open(path, "w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 0, 0o644
            if isinstance(data, tuple):
                kind, target = data
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = target
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))

# A valid one-layer image, the base of the docker-archive cases.
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.USTAR_FORMAT) as t:
    info = tarfile.TarInfo("hello"); info.size = 3; info.mtime = 0
    t.addfile(info, io.BytesIO(b"hi\n"))
layer = layer.getvalue()
diff_id = "sha256:" + sha(layer)
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
cname = sha(config) + ".json"
lname = sha(layer) + ".tar"
def manifest(layer_name=lname):
    return json.dumps([{"Config": cname, "RepoTags": ["x/y:1"], "Layers": [layer_name]}]).encode()

tar("dotdot.tar", [("manifest.json", manifest("../../etc/passwd")), (cname, config)])
tar("absolute.tar", [("manifest.json", manifest("/etc/passwd")), (cname, config)])
tar("symlink-out.tar", [("manifest.json", manifest("l.tar")), (cname, config), ("l.tar", ("symlink", "../../etc/passwd"))])
tar("hardlink-out.tar", [("manifest.json", manifest("l.tar")), (cname, config), ("l.tar", ("hardlink", "../outside"))])
tar("symlink-chain.tar", [("manifest.json", manifest("a.tar")), (cname, config),
                          ("a.tar", ("symlink", "b.tar")), ("b.tar", ("symlink", "a.tar"))])
tar("duplicate.tar", [("manifest.json", manifest()), (cname, config), (lname, layer), ("manifest.json", manifest())])
tar("layer-diffid.tar", [("manifest.json", manifest()), (cname, config), (lname, layer[:-512] + b"x" * 512)])
tar("not-json.tar", [("manifest.json", b"{not json"), (cname, config)])
tar("nested-json.tar", [("manifest.json", b"[" * 100000), (cname, config)])
tar("missing-member.tar", [("manifest.json", manifest("nope.tar")), (cname, config)])
tar("no-manifest.tar", [(cname, config), (lname, layer)])
# PAX header whose size disagrees with the ustar header (RUSTSEC-2026-0067's shape).
with tarfile.open("pax-size.tar", "w", format=tarfile.PAX_FORMAT) as t:
    for name, data in [("manifest.json", manifest()), (cname, config), (lname, layer)]:
        info = tarfile.TarInfo(name); info.mtime = 0; info.size = len(data)
        if name == lname:
            info.pax_headers = {"size": str(len(data) * 1000)}
        t.addfile(info, io.BytesIO(data))
full = open("duplicate.tar", "rb").read()
open("truncated.tar", "wb").write(full[: len(full) // 2 + 100])

# OCI layouts in tar files (oci-archive).
def oci(path, index, blobs=()):
    members = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", json.dumps(index).encode())]
    members += [("blobs/sha256/" + sha(b), b) for b in blobs]
    tar(path, members)
oci("digest-algorithm.tar", {"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha512:" + "a" * 128, "size": 2}]})
oci("digest-path.tar", {"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:../../../../etc/passwd", "size": 2}]})
oci("digest-upper.tar", {"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "A" * 64, "size": 2}]})
gz = gzip.compress(layer, mtime=0)
oconfig = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
def oci_image(path, layer_blob, stored_layer=None, media="application/vnd.oci.image.layer.v1.tar+gzip"):
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sha(oconfig), "size": len(oconfig)},
        "layers": [{"mediaType": media, "digest": "sha256:" + sha(layer_blob), "size": len(layer_blob)}]}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": "sha256:" + sha(m), "size": len(m)}]}
    members = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", json.dumps(index).encode()),
               ("blobs/sha256/" + sha(m), m), ("blobs/sha256/" + sha(oconfig), oconfig),
               ("blobs/sha256/" + sha(layer_blob), stored_layer if stored_layer is not None else layer_blob)]
    tar(path, members)
# A layer whose stored bytes do not match its digest (same size).
bad = bytearray(gz); bad[20] ^= 0xFF
oci_image("blob-mismatch.tar", gz, bytes(bad))
# A gzip layer cut short (its digest is of the cut bytes: only decompression can tell).
oci_image("truncated-gzip.tar", gz[: len(gz) // 2])
