package xnor.tflite;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;
import java.util.HashMap;
import java.util.Map;

/**
 * A long-lived interpreter process for the host: loads models and runs them on tensors
 * sent over stdin, answering on stdout, so that a caller (deploy/certify/java.py, which
 * certifies every piece of a converted file on this interpreter) pays for one JVM start
 * instead of one per piece and image.
 *
 * <p>The protocol is binary and little-endian. A request is one command byte:
 *
 * <pre>
 * 'L' u32 n, n bytes (a .tflite file)        load       → u32 handle, signature
 * 'R' u32 handle, u32 count, count tensors   run        → u32 count, count tensors
 * 'F' u32 handle                             free       → (nothing)
 * 'Q'                                        quit       (no reply; the process exits)
 * tensor    = u8 type (TFLite code: 0 FLOAT32, 2 INT32), u8 rank, rank × i32 dims,
 *             then the elements (4 bytes each, row-major)
 * signature = u32 inputs, (u8 type, u8 rank, dims) each, u32 outputs, (same) each
 * </pre>
 *
 * Every reply starts with a status byte: 0 (then the fields above) or 1 (then u32 n and n
 * bytes of a one-line UTF-8 message: the model's problem, naming the operator, or the
 * request's). A failed request leaves the server running; a stream out of step (a
 * length out of range, the end of input inside a request) ends it with status 2. System.out is redirected to
 * stderr so that nothing else can write into the replies.
 *
 * <pre>
 * java -Dxnor.native=off -cp classes xnor.tflite.SegmentServer
 * </pre>
 */
public final class SegmentServer {
    private static final Charset UTF8 = Charset.forName("UTF-8");
    /** Largest request accepted (bytes of one model or tensor): guards a corrupt stream. */
    private static final int MAX_BYTES = 1 << 30;

    private final DataInputStream in;
    private final OutputStream out;
    private final Map<Integer, Interpreter> models = new HashMap<Integer, Interpreter>();
    private int next = 1;

    SegmentServer(InputStream in, OutputStream out) {
        this.in = new DataInputStream(new BufferedInputStream(in, 1 << 16));
        this.out = new BufferedOutputStream(out, 1 << 16);
    }

    public static void main(String[] args) {
        OutputStream replies = System.out;
        System.setOut(new PrintStream(System.err, true));
        try {
            new SegmentServer(System.in, replies).serve();
        } catch (IOException e) {
            System.err.println("xnor-tflite: segment server: " + e);
            System.exit(2);
        }
    }

    /** Answers requests until 'Q' or the end of the input. */
    void serve() throws IOException {
        while (true) {
            int command = in.read();
            if (command < 0 || command == 'Q') {
                out.flush();
                return;
            }
            ByteBuffer reply;
            try {
                reply = handle(command);
            } catch (ModelException e) {
                reply = error(e.getMessage());
            } catch (RuntimeException e) {
                reply = error("internal error: " + e);
            } catch (OutOfMemoryError e) {
                reply = error("out of memory (" + e.getMessage() + "); give the JVM more -Xmx");
            } catch (StackOverflowError e) {
                reply = error("stack overflow");
            }
            if (reply != null) {
                out.write(reply.array(), 0, reply.position());
            }
            out.flush();
        }
    }

    private ByteBuffer handle(int command) throws IOException {
        if (command == 'L') {
            byte[] file = new byte[length()];
            in.readFully(file);
            Interpreter interpreter = new Interpreter(file);
            int handle = next++;
            models.put(handle, interpreter);
            Model m = interpreter.model();
            int bytes = 13;
            for (int[] tensors : new int[][] {m.inputs, m.outputs}) {
                for (int t : tensors) {
                    bytes += 2 + 4 * m.tensors.get(t).shape.length;
                }
            }
            ByteBuffer b = buffer(bytes);
            b.put((byte) 0).putInt(handle);
            signature(b, m, m.inputs);
            signature(b, m, m.outputs);
            return b;
        } else if (command == 'R') {
            // The whole request is read before anything is checked: an error reply must
            // leave the stream in step.
            int handle = Integer.reverseBytes(in.readInt());
            int count = Integer.reverseBytes(in.readInt());
            if (count < 0 || count > 1 << 16) {
                throw new IOException("input count " + count + " out of range");
            }
            int[] types = new int[count];
            int[][] shapes = new int[count][];
            Object[] inputs = new Object[count];
            for (int i = 0; i < count; i++) {
                types[i] = in.readUnsignedByte();
                shapes[i] = readShape();
                inputs[i] = readData(types[i], shapes[i]);
            }
            Interpreter interpreter = models.get(handle);
            if (interpreter == null) {
                throw new ModelException("no model with handle " + handle);
            }
            Model m = interpreter.model();
            if (count != m.inputs.length) {
                throw new ModelException("the model has " + m.inputs.length + " inputs; the "
                        + "request sent " + count);
            }
            for (int i = 0; i < count; i++) {
                Model.Tensor t = m.tensors.get(m.inputs[i]);
                if (types[i] != t.type || !java.util.Arrays.equals(shapes[i], t.shape)) {
                    throw new ModelException("input " + i + " is " + t + "; the request sent "
                            + Model.typeName(types[i]) + Shapes.str(shapes[i]));
                }
            }
            Object[] outputs = interpreter.runTensors(inputs);
            long bytes = 5;
            for (int i = 0; i < outputs.length; i++) {
                bytes += 2 + 4 * m.tensors.get(m.outputs[i]).shape.length + 4L * length(outputs[i]);
            }
            if (bytes > MAX_BYTES) {
                throw new ModelException("the outputs need " + bytes + " bytes: too large");
            }
            ByteBuffer b = buffer((int) bytes);
            b.put((byte) 0).putInt(outputs.length);
            for (int i = 0; i < outputs.length; i++) {
                Model.Tensor t = m.tensors.get(m.outputs[i]);
                shape(b, t);
                if (outputs[i] instanceof int[]) {
                    for (int v : (int[]) outputs[i]) {
                        b.putInt(v);
                    }
                } else {
                    for (float v : (float[]) outputs[i]) {
                        b.putFloat(v);
                    }
                }
            }
            return b;
        } else if (command == 'F') {
            int handle = in.readInt();
            models.remove(Integer.reverseBytes(handle));
            return null;
        }
        throw new IOException("unknown request " + command + ": the stream is out of step");
    }

    private static int length(Object array) {
        return array instanceof int[] ? ((int[]) array).length : ((float[]) array).length;
    }

    private int length() throws IOException {
        int n = Integer.reverseBytes(in.readInt());
        if (n < 0 || n > MAX_BYTES) {
            throw new IOException("request length " + n + " out of range");
        }
        return n;
    }

    private int[] readShape() throws IOException {
        int rank = in.readUnsignedByte();
        int[] shape = new int[rank];
        long size = 1;
        for (int d = 0; d < rank; d++) {
            shape[d] = Integer.reverseBytes(in.readInt());
            size *= shape[d];
            if (shape[d] < 0 || 4 * size > MAX_BYTES) {
                throw new IOException("tensor shape " + Shapes.str(shape) + " out of range");
            }
        }
        return shape;
    }

    private Object readData(int type, int[] shape) throws IOException {
        int n = Shapes.size(shape);
        byte[] raw = new byte[4 * n];
        in.readFully(raw);
        ByteBuffer b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        if (type == Model.INT32) {
            int[] data = new int[n];
            b.asIntBuffer().get(data);
            return data;
        } else if (type == Model.FLOAT32) {
            float[] data = new float[n];
            b.asFloatBuffer().get(data);
            return data;
        }
        throw new IOException("tensor type " + Model.typeName(type) + " is not FLOAT32/INT32");
    }

    private static void shape(ByteBuffer b, Model.Tensor t) {
        b.put((byte) t.type).put((byte) t.shape.length);
        for (int d : t.shape) {
            b.putInt(d);
        }
    }

    private static void signature(ByteBuffer b, Model m, int[] tensors) {
        b.putInt(tensors.length);
        for (int i : tensors) {
            shape(b, m.tensors.get(i));
        }
    }

    private static ByteBuffer buffer(int bytes) {
        return ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static ByteBuffer error(String message) {
        byte[] text = String.valueOf(message).replace('\n', ' ').getBytes(UTF8);
        ByteBuffer b = buffer(5 + text.length);
        b.put((byte) 1).putInt(text.length).put(text);
        return b;
    }
}
