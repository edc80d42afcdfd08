package xnor.tflite;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;

/** Minimal NumPy .npy (version 1/2, C order) reading and writing for the command line. */
final class Npy {
    final int[] shape;
    final float[] floats; // for '<f4' / '<f8'
    final byte[] bytes; // for '|u1'

    private Npy(int[] shape, float[] floats, byte[] bytes) {
        this.shape = shape;
        this.floats = floats;
        this.bytes = bytes;
    }

    static Npy read(byte[] file, String name) {
        if (file.length < 10 || (file[0] & 0xff) != 0x93 || file[1] != 'N' || file[2] != 'U') {
            throw new ModelException(name + " is not a .npy file");
        }
        int major = file[6];
        ByteBuffer b = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        int headerLen = major == 1 ? b.getShort(8) & 0xffff : b.getInt(8);
        int start = major == 1 ? 10 : 12;
        if (headerLen < 0 || start + headerLen > file.length) {
            throw new ModelException(name + ": truncated .npy header");
        }
        String header = new String(file, start, headerLen, Charset.forName("ISO-8859-1"));
        String descr = field(header, "descr", name);
        if (header.contains("'fortran_order': True")) {
            throw new ModelException(name + ": Fortran-ordered arrays are not supported");
        }
        String shapeText = field(header, "shape", name).replaceAll("[()\\s]", "");
        String[] parts = shapeText.isEmpty() ? new String[0] : shapeText.split(",");
        int count = 0;
        for (String p : parts) {
            if (!p.isEmpty()) {
                count++;
            }
        }
        int[] shape = new int[count];
        long n = 1;
        for (int i = 0, j = 0; i < parts.length; i++) {
            if (!parts[i].isEmpty()) {
                shape[j] = Integer.parseInt(parts[i]);
                n *= shape[j++];
            }
        }
        int data = start + headerLen;
        int width = "'<f4'".equals(descr) ? 4 : "'<f8'".equals(descr) ? 8
                : "'|u1'".equals(descr) ? 1 : -1;
        if (width < 0) {
            throw new ModelException(name + ": dtype " + descr
                    + " is not supported (float32, float64 or uint8)");
        }
        if (data + n * width != file.length) {
            throw new ModelException(name + ": expected " + n * width + " data bytes for shape "
                    + Shapes.str(shape) + ", found " + (file.length - data));
        }
        if (width == 1) {
            byte[] out = new byte[(int) n];
            System.arraycopy(file, data, out, 0, (int) n);
            return new Npy(shape, null, out);
        }
        float[] out = new float[(int) n];
        for (int i = 0; i < n; i++) {
            out[i] = width == 4 ? b.getFloat(data + 4 * i) : (float) b.getDouble(data + 8 * i);
        }
        return new Npy(shape, out, null);
    }

    private static String field(String header, String key, String name) {
        int k = header.indexOf("'" + key + "':");
        if (k < 0) {
            throw new ModelException(name + ": .npy header lacks '" + key + "'");
        }
        int s = k + key.length() + 3;
        while (s < header.length() && header.charAt(s) == ' ') {
            s++;
        }
        int e = header.charAt(s) == '(' ? header.indexOf(')', s) + 1 : header.indexOf(',', s);
        if (e <= s) {
            throw new ModelException(name + ": malformed .npy header");
        }
        return header.substring(s, e).trim();
    }

    /** Writes float32 data atomically (temporary file, then rename). */
    static void writeFloats(File path, int[] shape, float[] values) throws IOException {
        StringBuilder dims = new StringBuilder();
        for (int d : shape) {
            dims.append(d).append(", ");
        }
        String shapeText = shape.length == 1 ? "(" + shape[0] + ",)"
                : "(" + (shape.length == 0 ? "" : dims.substring(0, dims.length() - 2)) + ")";
        StringBuilder header = new StringBuilder("{'descr': '<f4', 'fortran_order': False, "
                + "'shape': " + shapeText + ", }");
        while ((10 + header.length() + 1) % 64 != 0) {
            header.append(' ');
        }
        header.append('\n');
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0});
        out.write(header.length() & 0xff);
        out.write(header.length() >> 8);
        out.write(header.toString().getBytes(Charset.forName("ISO-8859-1")));
        ByteBuffer data = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        data.asFloatBuffer().put(values);
        out.write(data.array());
        File tmp = new File(path.getAbsoluteFile().getParentFile(), "." + path.getName() + ".tmp");
        OutputStream os = new FileOutputStream(tmp);
        try {
            out.writeTo(os);
        } finally {
            os.close();
        }
        if (!tmp.renameTo(path)) {
            tmp.delete();
            throw new IOException("cannot rename " + tmp + " to " + path);
        }
    }
}
