package xnor.tflite;

import java.nio.charset.Charset;

/**
 * A bounds-checked reader of FlatBuffers binary data (little endian).
 *
 * <p>Every read checks its offset against the buffer, so a truncated or corrupted file raises
 * {@link ModelException} instead of reading garbage. Tables are addressed by field id
 * (the n-th field of the schema): its vtable entry is at byte 4 + 2n of the vtable.
 */
final class FlatBuffer {
    private static final Charset UTF8 = Charset.forName("UTF-8");

    final byte[] data;

    FlatBuffer(byte[] data) {
        this.data = data;
    }

    private void check(long pos, long size, String what) {
        if (pos < 0 || size < 0 || pos + size > data.length) {
            throw new ModelException("malformed model file: " + what + " at byte " + pos
                    + " (+" + size + ") lies outside the " + data.length + "-byte file");
        }
    }

    int u8(int pos) {
        check(pos, 1, "byte");
        return data[pos] & 0xff;
    }

    int i8(int pos) {
        check(pos, 1, "byte");
        return data[pos];
    }

    int u16(int pos) {
        check(pos, 2, "uint16");
        return (data[pos] & 0xff) | (data[pos + 1] & 0xff) << 8;
    }

    int i32(int pos) {
        check(pos, 4, "int32");
        return (data[pos] & 0xff) | (data[pos + 1] & 0xff) << 8 | (data[pos + 2] & 0xff) << 16
                | (data[pos + 3] & 0xff) << 24;
    }

    long i64(int pos) {
        check(pos, 8, "int64");
        return (i32(pos) & 0xffffffffL) | ((long) i32(pos + 4)) << 32;
    }

    float f32(int pos) {
        return Float.intBitsToFloat(i32(pos));
    }

    /** The position that the unsigned 32-bit offset stored at {@code pos} points to. */
    int deref(int pos, String what) {
        long target = pos + (i32(pos) & 0xffffffffL);
        check(target, 4, what);
        return (int) target;
    }

    /** The root table of a file. */
    Table root() {
        check(0, 8, "file header");
        return new Table(this, deref(0, "root table"), "Model");
    }

    /** The 4-character file identifier (bytes 4..8). */
    String identifier() {
        check(0, 8, "file header");
        return new String(data, 4, 4, Charset.forName("ISO-8859-1"));
    }

    /** A table: an object with a vtable telling where each present field is stored. */
    static final class Table {
        final FlatBuffer fb;
        final int pos;
        final String name;
        private final int vtable;
        private final int vtableSize;

        Table(FlatBuffer fb, int pos, String name) {
            this.fb = fb;
            this.pos = pos;
            this.name = name;
            long vt = (long) pos - fb.i32(pos);
            fb.check(vt, 4, name + " vtable");
            this.vtable = (int) vt;
            this.vtableSize = fb.u16(vtable);
            if (vtableSize < 4 || (vtableSize & 1) != 0) {
                throw new ModelException("malformed model file: " + name + " vtable at byte "
                        + vtable + " has size " + vtableSize);
            }
            fb.check(vtable, vtableSize, name + " vtable");
            fb.check(pos, fb.u16(vtable + 2), name + " object");
        }

        /** The absolute position of field {@code id}, or 0 if absent. */
        int field(int id) {
            int entry = 4 + 2 * id;
            if (entry + 2 > vtableSize) {
                return 0;
            }
            int offset = fb.u16(vtable + entry);
            return offset == 0 ? 0 : pos + offset;
        }

        boolean has(int id) {
            return field(id) != 0;
        }

        int i32(int id, int dflt) {
            int p = field(id);
            return p == 0 ? dflt : fb.i32(p);
        }

        long i64(int id, long dflt) {
            int p = field(id);
            return p == 0 ? dflt : fb.i64(p);
        }

        int i8(int id, int dflt) {
            int p = field(id);
            return p == 0 ? dflt : fb.i8(p);
        }

        int u8(int id, int dflt) {
            int p = field(id);
            return p == 0 ? dflt : fb.u8(p);
        }

        boolean bool(int id, boolean dflt) {
            int p = field(id);
            return p == 0 ? dflt : fb.u8(p) != 0;
        }

        float f32(int id, float dflt) {
            int p = field(id);
            return p == 0 ? dflt : fb.f32(p);
        }

        Table table(int id, String what) {
            int p = field(id);
            return p == 0 ? null : new Table(fb, fb.deref(p, what), what);
        }

        /** Start of the vector's elements and its length, checked against the file. */
        private int[] vector(int id, int elementSize, String what) {
            int p = field(id);
            if (p == 0) {
                return null;
            }
            int start = fb.deref(p, what);
            long length = fb.i32(start) & 0xffffffffL;
            fb.check(start + 4L, length * elementSize, what);
            return new int[] {start + 4, (int) length};
        }

        int[] ints(int id, String what) {
            int[] v = vector(id, 4, what);
            if (v == null) {
                return null;
            }
            int[] out = new int[v[1]];
            for (int i = 0; i < out.length; i++) {
                out[i] = fb.i32(v[0] + 4 * i);
            }
            return out;
        }

        /** A [start, length] pair of a byte vector, or null if absent. */
        int[] bytes(int id, String what) {
            return vector(id, 1, what);
        }

        String string(int id, String what) {
            int[] v = vector(id, 1, what);
            return v == null ? null : new String(fb.data, v[0], v[1], UTF8);
        }

        int tableCount(int id, String what) {
            int[] v = vector(id, 4, what);
            return v == null ? 0 : v[1];
        }

        Table tableAt(int id, int index, String what) {
            int[] v = vector(id, 4, what);
            if (v == null || index < 0 || index >= v[1]) {
                throw new ModelException("malformed model file: " + what + " #" + index
                        + " does not exist");
            }
            return new Table(fb, fb.deref(v[0] + 4 * index, what), what + " #" + index);
        }
    }
}
