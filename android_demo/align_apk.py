"""Zip alignment for the APK, in place of zipalign (Debian's zipalign 10 aligns stored
shared libraries to 4 KB only; Android 15+ devices with 16 KB pages need 16 KB).

    python align_apk.py IN.apk OUT.apk
    python align_apk.py --check APK       # exit status 1 if an entry is misaligned

Rewrites every entry in order with its compression kept. The data of each stored (not
compressed) entry starts at a multiple of 4 bytes, of a stored ``lib/*.so`` at a multiple of
16384, so the dynamic linker can map it straight from the APK. Padding goes into an
extensible-data field of type 0xD935 (zipalign's) in the entry's local header.
"""

import struct
import sys
import zipfile

LIB_ALIGNMENT = 16384
ALIGNMENT = 4
_PAD_FIELD = 0xD935
_LOCAL_HEADER = 30  # bytes before the file name in a local file header


def alignment(info):
    """The required start alignment of an entry's data (1: none, compressed entries)."""
    if info.compress_type != zipfile.ZIP_STORED:
        return 1
    if info.filename.startswith("lib/") and info.filename.endswith(".so"):
        return LIB_ALIGNMENT
    return ALIGNMENT


def padding_field(data_start, align):
    """An extra field that moves data starting at ``data_start`` to a multiple of ``align``."""
    if align == 1:
        return b""
    pad = -(data_start + 6) % align  # 6: the field's id, size and alignment value
    return struct.pack("<HHH", _PAD_FIELD, 2 + pad, align) + b"\0" * pad


def data_offset(zf, info):
    """Where an entry's data starts in the file of the open ZipFile ``zf``."""
    zf.fp.seek(info.header_offset)
    header = zf.fp.read(_LOCAL_HEADER)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + _LOCAL_HEADER + name_len + extra_len


def align(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            out = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            out.compress_type = info.compress_type
            out.external_attr = info.external_attr
            start = zout.fp.tell() + _LOCAL_HEADER + len(info.filename.encode())
            out.extra = padding_field(start, alignment(info))
            zout.writestr(out, data)
    misaligned = check(dst)
    if misaligned:
        raise SystemExit("align_apk: not aligned: %s" % ", ".join(misaligned))


def check(path):
    """The names of the entries of the zip at ``path`` whose data is not aligned."""
    with zipfile.ZipFile(path) as z:
        return [i.filename for i in z.infolist() if data_offset(z, i) % alignment(i)]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        bad = check(sys.argv[2])
        if bad:
            raise SystemExit("align_apk: not aligned in %s: %s" % (sys.argv[2], ", ".join(bad)))
    elif len(sys.argv) == 3:
        align(sys.argv[1], sys.argv[2])
    else:
        raise SystemExit("usage: align_apk.py IN.apk OUT.apk | align_apk.py --check APK")
