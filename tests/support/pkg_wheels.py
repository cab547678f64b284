"""Writes small pure-Python wheels for pkg_test into a find-links directory, by hand (zipfile),
so that the tests need no index, no network and no build backend.

usage: pkg_wheels.py OUTDIR [NAME==VERSION ...]   (with specs: only those wheels)
"""
import base64
import hashlib
import sys
import zipfile


def wheel(outdir, name, version, requires=(), extra_files=None):
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist.lower()}/__init__.py": f"__version__ = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: pkg_test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files.update(extra_files or {})
    record = []
    with zipfile.ZipFile(f"{outdir}/{dist}-{version}-py3-none-any.whl", "w") as z:
        for path, text in files.items():
            data = text.encode()
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")


out = sys.argv[1]
if len(sys.argv) > 2:
    for spec in sys.argv[2:]:
        name, version = spec.split("==")
        wheel(out, name, version)
    sys.exit(0)
for v in ("4.23.0", "4.25.0"):
    wheel(out, "rb-schema", v)
# An odd spelling on purpose: pip.versions must find it as rb-core, rb_core and Rb_Core.
for v in ("2.33.2", "2.37.2"):
    wheel(out, "Rb_Core", v)
wheel(out, "rb-app", "1.0.0", requires=["rb-schema>=4.25"])
wheel(out, "rb-extra", "1.0.0")
# Installs "successfully" but rewrites Rb_Core 2.37.2's metadata to claim 2.37.3 (through the
# wheel's .data/purelib, which pip copies into site-packages as is): a package that is not at
# the asked version after pip said yes, which pip.pin must catch.
wheel(out, "rb-clobber", "1.0.0", extra_files={
    "rb_clobber-1.0.0.data/purelib/Rb_Core-2.37.2.dist-info/METADATA":
        "Metadata-Version: 2.1\nName: Rb_Core\nVersion: 2.37.3\n",
})
