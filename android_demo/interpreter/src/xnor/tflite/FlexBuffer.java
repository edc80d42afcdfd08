package xnor.tflite;

import java.nio.charset.Charset;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A reader for FlexBuffers, the schema-less format of TFLite custom operator options.
 *
 * <p>Decodes the root value (for LCE operators: a map from option name to integer) into
 * Java objects: {@code Long}, {@code Double}, {@code Boolean}, {@code String}, {@code Map}
 * and {@code Object[]}. Every read is bounds-checked; nesting is limited so that a cyclic
 * offset cannot recurse forever.
 */
final class FlexBuffer {
    private static final int NULL = 0, INT = 1, UINT = 2, FLOAT = 3, KEY = 4, STRING = 5,
            INDIRECT_INT = 6, INDIRECT_UINT = 7, INDIRECT_FLOAT = 8, MAP = 9, VECTOR = 10,
            VECTOR_INT = 11, VECTOR_UINT = 12, VECTOR_FLOAT = 13, VECTOR_KEY = 14,
            VECTOR_BOOL = 36, BOOL = 26;
    private static final int MAX_DEPTH = 16;

    private final byte[] buf;
    private final int start;
    private final int end;
    private final String what;

    private FlexBuffer(byte[] buf, int start, int length, String what) {
        this.buf = buf;
        this.start = start;
        this.end = start + length;
        this.what = what;
    }

    /** Decodes the root of the FlexBuffer stored in {@code buf[start, start+length)}. */
    static Object decode(byte[] buf, int start, int length, String what) {
        FlexBuffer fb = new FlexBuffer(buf, start, length, what);
        if (length < 3) {
            throw fb.error("is only " + length + " bytes long");
        }
        int byteWidth = (int) fb.u(fb.end - 1, 1);
        int packedType = (int) fb.u(fb.end - 2, 1);
        if (byteWidth != 1 && byteWidth != 2 && byteWidth != 4 && byteWidth != 8) {
            throw fb.error("has root byte width " + byteWidth);
        }
        return fb.value(fb.end - 2 - byteWidth, byteWidth, packedType, 0);
    }

    private ModelException error(String message) {
        return new ModelException("malformed model file: " + what + " (FlexBuffers) " + message);
    }

    private void check(long pos, long size) {
        if (pos < start || size < 0 || pos + size > end) {
            throw error("refers to byte " + (pos - start) + " (+" + size + ") outside its "
                    + (end - start) + " bytes");
        }
    }

    private long u(long pos, int width) {
        check(pos, width);
        int p = (int) pos;
        long v = 0;
        for (int i = 0; i < width; i++) {
            v |= (buf[p + i] & 0xffL) << (8 * i);
        }
        return v;
    }

    private long s(long pos, int width) {
        long v = u(pos, width);
        int shift = 64 - 8 * width;
        return (v << shift) >> shift;
    }

    private double f(long pos, int width) {
        if (width == 4) {
            return Float.intBitsToFloat((int) u(pos, 4));
        }
        if (width == 8) {
            return Double.longBitsToDouble(u(pos, 8));
        }
        throw error("has a float of width " + width);
    }

    private long indirect(long pos, int width) {
        long target = pos - u(pos, width);
        check(target, 0);
        return target;
    }

    private Object value(long pos, int parentWidth, int packedType, int depth) {
        if (depth > MAX_DEPTH) {
            throw error("nests deeper than " + MAX_DEPTH + " levels");
        }
        int type = packedType >> 2;
        int childWidth = 1 << (packedType & 3);
        switch (type) {
            case NULL:
                return null;
            case INT:
                return s(pos, parentWidth);
            case UINT:
                return u(pos, parentWidth);
            case BOOL:
                return u(pos, parentWidth) != 0;
            case FLOAT:
                return f(pos, parentWidth);
            case INDIRECT_INT:
                return s(indirect(pos, parentWidth), childWidth);
            case INDIRECT_UINT:
                return u(indirect(pos, parentWidth), childWidth);
            case INDIRECT_FLOAT:
                return f(indirect(pos, parentWidth), childWidth);
            case KEY:
                return key(indirect(pos, parentWidth));
            case STRING: {
                long p = indirect(pos, parentWidth);
                long size = u(p - childWidth, childWidth);
                check(p, size);
                return new String(buf, (int) p, (int) size, Charset.forName("UTF-8"));
            }
            case MAP:
                return map(indirect(pos, parentWidth), childWidth, depth);
            case VECTOR:
                return vector(indirect(pos, parentWidth), childWidth, depth);
            case VECTOR_INT:
            case VECTOR_UINT:
            case VECTOR_BOOL: {
                long p = indirect(pos, parentWidth);
                long n = u(p - childWidth, childWidth);
                check(p, n * childWidth);
                Object[] out = new Object[(int) n];
                for (int i = 0; i < n; i++) {
                    long v = type == VECTOR_INT ? s(p + (long) i * childWidth, childWidth)
                            : u(p + (long) i * childWidth, childWidth);
                    out[i] = type == VECTOR_BOOL ? (Object) (v != 0) : (Object) v;
                }
                return out;
            }
            case VECTOR_FLOAT: {
                long p = indirect(pos, parentWidth);
                long n = u(p - childWidth, childWidth);
                check(p, n * childWidth);
                Object[] out = new Object[(int) n];
                for (int i = 0; i < n; i++) {
                    out[i] = f(p + (long) i * childWidth, childWidth);
                }
                return out;
            }
            default:
                throw error("has a value of unsupported type " + type);
        }
    }

    private String key(long p) {
        long q = p;
        while (true) {
            check(q, 1);
            if (buf[(int) q] == 0) {
                break;
            }
            q++;
        }
        return new String(buf, (int) p, (int) (q - p), Charset.forName("UTF-8"));
    }

    private Object[] vector(long p, int width, int depth) {
        long n = u(p - width, width);
        check(p, n * width + n);
        Object[] out = new Object[(int) n];
        long types = p + n * width;
        for (int i = 0; i < n; i++) {
            out[i] = value(p + (long) i * width, width, (int) u(types + i, 1), depth + 1);
        }
        return out;
    }

    private Map<String, Object> map(long p, int width, int depth) {
        Object[] values = vector(p, width, depth);
        long keysPos = indirect(p - 3L * width, width);
        int keysWidth = (int) u(p - 2L * width, width);
        if (keysWidth != 1 && keysWidth != 2 && keysWidth != 4 && keysWidth != 8) {
            throw error("has a map whose keys have byte width " + keysWidth);
        }
        long nKeys = u(keysPos - keysWidth, keysWidth);
        if (nKeys != values.length) {
            throw error("has a map with " + nKeys + " keys but " + values.length + " values");
        }
        check(keysPos, nKeys * keysWidth);
        Map<String, Object> out = new LinkedHashMap<String, Object>();
        for (int i = 0; i < nKeys; i++) {
            out.put(key(indirect(keysPos + (long) i * keysWidth, keysWidth)), values[i]);
        }
        return out;
    }
}
