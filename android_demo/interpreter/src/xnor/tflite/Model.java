package xnor.tflite;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A parsed .tflite file (the TFLite FlatBuffers schema, version 3): the first subgraph's
 * tensors, operators and constant data, and the model's metadata entries.
 *
 * <p>Only what inference needs is read; every offset and length is checked against the
 * file, and constant data must have exactly the size its tensor's shape and type imply.
 */
public final class Model {
    /** TFLite tensor types (schema enum TensorType). */
    public static final int FLOAT32 = 0, INT32 = 2, UINT8 = 3, INT64 = 4, BOOL = 6, INT8 = 9;
    private static final String[] TYPE_NAMES = {"FLOAT32", "FLOAT16", "INT32", "UINT8", "INT64",
        "STRING", "BOOL", "INT16", "COMPLEX64", "INT8", "FLOAT64", "COMPLEX128", "UINT64",
        "RESOURCE", "VARIANT", "UINT32", "UINT16", "INT4", "BFLOAT16"};
    /** Largest tensor (elements) accepted: guards against absurd shapes in corrupt files. */
    static final long MAX_ELEMENTS = 1L << 28;

    /** One tensor of the main subgraph. */
    public static final class Tensor {
        public final int index;
        public final String name;
        public final int type;
        public final int[] shape;
        /** Constant data (float[] or int[]), or null for activations. */
        final Object constant;

        Tensor(int index, String name, int type, int[] shape, Object constant) {
            this.index = index;
            this.name = name;
            this.type = type;
            this.shape = shape;
            this.constant = constant;
        }

        public int size() {
            return elementCount(shape);
        }

        public boolean isConstant() {
            return constant != null;
        }

        @Override
        public String toString() {
            return "tensor " + index + " '" + name + "' " + typeName(type) + Shapes.str(shape);
        }
    }

    /** One operator: its kind, tensor indices (-1 = optional input absent) and options. */
    public static final class Operator {
        public final int index;
        /** Builtin operator code, or -1 for a custom operator. */
        public final int builtinCode;
        /** Custom operator name, or null for builtins. */
        public final String customCode;
        public final int version;
        public final int[] inputs;
        public final int[] outputs;
        final int builtinOptionsType;
        final FlatBuffer.Table builtinOptions;
        /** Decoded FlexBuffers custom options (a Map for LCE ops), or null. */
        final Object customOptions;

        Operator(int index, int builtinCode, String customCode, int version, int[] inputs,
                int[] outputs, int builtinOptionsType, FlatBuffer.Table builtinOptions,
                Object customOptions) {
            this.index = index;
            this.builtinCode = builtinCode;
            this.customCode = customCode;
            this.version = version;
            this.inputs = inputs;
            this.outputs = outputs;
            this.builtinOptionsType = builtinOptionsType;
            this.builtinOptions = builtinOptions;
            this.customOptions = customOptions;
        }

        public String name() {
            return customCode != null ? customCode : BuiltinOps.name(builtinCode);
        }

        @Override
        public String toString() {
            return "operator #" + index + " (" + name() + ")";
        }
    }

    public final int version;
    public final List<Tensor> tensors;
    public final List<Operator> operators;
    public final int[] inputs;
    public final int[] outputs;
    private final Map<String, byte[]> metadata;

    private Model(int version, List<Tensor> tensors, List<Operator> operators, int[] inputs,
            int[] outputs, Map<String, byte[]> metadata) {
        this.version = version;
        this.tensors = Collections.unmodifiableList(tensors);
        this.operators = Collections.unmodifiableList(operators);
        this.inputs = inputs;
        this.outputs = outputs;
        this.metadata = metadata;
    }

    /** The metadata entry {@code name} (raw bytes), or null. */
    public byte[] metadata(String name) {
        byte[] value = metadata.get(name);
        return value == null ? null : value.clone();
    }

    public List<String> metadataNames() {
        return new ArrayList<String>(metadata.keySet());
    }

    public static String typeName(int type) {
        return type >= 0 && type < TYPE_NAMES.length ? TYPE_NAMES[type] : "type#" + type;
    }

    static int elementCount(int[] shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return (int) n;
    }

    /** Reads a whole stream (a model asset or file) into memory; closes it. */
    public static byte[] readAll(java.io.InputStream in) throws java.io.IOException {
        try {
            java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
            byte[] buffer = new byte[1 << 16];
            int n;
            while ((n = in.read(buffer)) > 0) {
                out.write(buffer, 0, n);
            }
            return out.toByteArray();
        } finally {
            in.close();
        }
    }

    /** Parses a .tflite file. Raises ModelException naming the problem if it is invalid. */
    public static Model parse(byte[] file) {
        if (file == null || file.length < 8) {
            throw new ModelException("not a TFLite model: the file is "
                    + (file == null ? 0 : file.length) + " bytes long");
        }
        FlatBuffer fb = new FlatBuffer(file);
        String id = fb.identifier();
        if (!"TFL3".equals(id)) {
            throw new ModelException("not a TFLite model: file identifier is '"
                    + printable(id) + "', expected 'TFL3'");
        }
        FlatBuffer.Table model = fb.root();
        int version = model.i32(0, 0);
        if (version != 3) {
            throw new ModelException("unsupported TFLite schema version " + version
                    + " (expected 3)");
        }
        // Operator codes.
        int nCodes = model.tableCount(1, "operator code");
        int[] codes = new int[nCodes];
        String[] customs = new String[nCodes];
        int[] versions = new int[nCodes];
        for (int i = 0; i < nCodes; i++) {
            FlatBuffer.Table oc = model.tableAt(1, i, "operator code");
            int code = Math.max(oc.i8(0, 0), oc.i32(3, 0));
            customs[i] = oc.string(1, "custom operator name");
            codes[i] = code;
            versions[i] = oc.i32(2, 1);
            if (code == BuiltinOps.CUSTOM && customs[i] == null) {
                throw new ModelException("malformed model file: custom operator code #" + i
                        + " has no name");
            }
        }
        // Buffers.
        int nBuffers = model.tableCount(4, "buffer");
        if (model.tableCount(2, "subgraph") < 1) {
            throw new ModelException("malformed model file: the model has no subgraph");
        }
        FlatBuffer.Table graph = model.tableAt(2, 0, "subgraph");
        // Tensors.
        int nTensors = graph.tableCount(0, "tensor");
        List<Tensor> tensors = new ArrayList<Tensor>(nTensors);
        for (int i = 0; i < nTensors; i++) {
            FlatBuffer.Table t = graph.tableAt(0, i, "tensor");
            String name = t.string(3, "tensor name");
            int type = t.u8(1, FLOAT32);
            int[] shape = t.ints(0, "tensor shape");
            if (shape == null) {
                shape = new int[0];
            }
            long n = 1;
            for (int d : shape) {
                if (d < 0) {
                    throw new ModelException("tensor " + i + " '" + name + "' has a dynamic or "
                            + "negative dimension " + Shapes.str(shape)
                            + ": only static shapes are supported");
                }
                n *= d;
                if (n > MAX_ELEMENTS) {
                    throw new ModelException("tensor " + i + " '" + name + "' shape "
                            + Shapes.str(shape) + " is too large");
                }
            }
            int buffer = t.i32(2, 0);
            if (buffer < 0 || buffer >= Math.max(nBuffers, 1)) {
                throw new ModelException("malformed model file: tensor " + i + " '" + name
                        + "' refers to buffer " + buffer + " of " + nBuffers);
            }
            Object constant = null;
            if (buffer != 0) {
                constant = readBuffer(fb, model.tableAt(4, buffer, "buffer"), type, (int) n,
                        "tensor " + i + " '" + name + "'");
            }
            tensors.add(new Tensor(i, name == null ? "" : name, type, shape, constant));
        }
        int[] inputs = checkTensorList(graph.ints(1, "subgraph inputs"), nTensors, "input");
        int[] outputs = checkTensorList(graph.ints(2, "subgraph outputs"), nTensors, "output");
        // Operators.
        int nOps = graph.tableCount(3, "operator");
        List<Operator> operators = new ArrayList<Operator>(nOps);
        for (int i = 0; i < nOps; i++) {
            FlatBuffer.Table op = graph.tableAt(3, i, "operator");
            long opcode = op.i32(0, 0) & 0xffffffffL;
            if (opcode >= nCodes) {
                throw new ModelException("malformed model file: operator #" + i
                        + " uses operator code " + opcode + " of " + nCodes);
            }
            int c = (int) opcode;
            String where = "operator #" + i;
            int[] in = op.ints(1, where + " inputs");
            int[] out = op.ints(2, where + " outputs");
            in = in == null ? new int[0] : in;
            out = out == null ? new int[0] : out;
            for (int t : in) {
                if (t < -1 || t >= nTensors) {
                    throw new ModelException("malformed model file: " + where
                            + " reads tensor " + t + " of " + nTensors);
                }
            }
            checkTensorList(out, nTensors, where + " output");
            int optionsType = op.u8(3, 0);
            FlatBuffer.Table options = op.table(4, where + " builtin options");
            Object custom = null;
            if (customs[c] != null) {
                if (op.i64(10, 0) != 0) {
                    throw new ModelException(where + " (" + customs[c] + ") stores its options "
                            + "outside the flatbuffer (large custom options): not supported");
                }
                int[] bytes = op.bytes(5, where + " custom options");
                if (bytes != null && bytes[1] > 0) {
                    if (op.u8(6, 0) != 0) {
                        throw new ModelException(where + " (" + customs[c] + ") has custom "
                                + "options in an unknown format " + op.u8(6, 0));
                    }
                    custom = FlexBuffer.decode(file, bytes[0], bytes[1],
                            where + " (" + customs[c] + ") custom options");
                }
            }
            operators.add(new Operator(i, customs[c] != null ? -1 : codes[c], customs[c],
                    versions[c], in, out, optionsType, options, custom));
        }
        // Metadata.
        Map<String, byte[]> metadata = new LinkedHashMap<String, byte[]>();
        int nMeta = model.tableCount(6, "metadata");
        for (int i = 0; i < nMeta; i++) {
            FlatBuffer.Table m = model.tableAt(6, i, "metadata");
            String name = m.string(0, "metadata name");
            long buffer = m.i32(1, 0) & 0xffffffffL;
            if (name == null || buffer >= nBuffers) {
                throw new ModelException("malformed model file: metadata entry #" + i
                        + " refers to buffer " + buffer + " of " + nBuffers);
            }
            byte[] raw = rawBuffer(fb, model.tableAt(4, (int) buffer, "buffer"),
                    "metadata '" + name + "'");
            metadata.put(name, raw);
        }
        return new Model(version, tensors, operators, inputs, outputs, metadata);
    }

    private static String printable(String s) {
        StringBuilder b = new StringBuilder();
        for (char ch : s.toCharArray()) {
            if (ch >= 32 && ch < 127) {
                b.append(ch);
            } else {
                b.append(String.format("\\x%02x", (int) ch));
            }
        }
        return b.toString();
    }

    private static int[] checkTensorList(int[] list, int nTensors, String what) {
        if (list == null) {
            return new int[0];
        }
        for (int t : list) {
            if (t < 0 || t >= nTensors) {
                throw new ModelException("malformed model file: " + what + " tensor " + t
                        + " does not exist (" + nTensors + " tensors)");
            }
        }
        return list;
    }

    private static byte[] rawBuffer(FlatBuffer fb, FlatBuffer.Table buffer, String what) {
        long offset = buffer.i64(1, 0);
        long size = buffer.i64(2, 0);
        if (offset > 1) {
            if (size < 0 || offset + size > fb.data.length) {
                throw new ModelException("malformed model file: data of " + what
                        + " (bytes " + offset + "+" + size + ") lies outside the "
                        + fb.data.length + "-byte file");
            }
            byte[] out = new byte[(int) size];
            System.arraycopy(fb.data, (int) offset, out, 0, (int) size);
            return out;
        }
        int[] v = buffer.bytes(0, "data of " + what);
        if (v == null) {
            return new byte[0];
        }
        byte[] out = new byte[v[1]];
        System.arraycopy(fb.data, v[0], out, 0, v[1]);
        return out;
    }

    private static Object readBuffer(FlatBuffer fb, FlatBuffer.Table buffer, int type, int n,
            String what) {
        byte[] raw = rawBuffer(fb, buffer, what);
        if (raw.length == 0) {
            return null; // an empty buffer: an activation tensor
        }
        int width;
        if (type == FLOAT32 || type == INT32) {
            width = 4;
        } else if (type == INT64) {
            width = 8;
        } else if (type == INT8 || type == UINT8 || type == BOOL) {
            width = 1;
        } else {
            throw new ModelException(what + " holds constant data of unsupported type "
                    + typeName(type));
        }
        if (raw.length != (long) n * width) {
            throw new ModelException("malformed model file: " + what + " has " + raw.length
                    + " bytes of data but its shape and type need " + ((long) n * width));
        }
        if (type == FLOAT32) {
            float[] out = new float[n];
            for (int i = 0; i < n; i++) {
                out[i] = Float.intBitsToFloat(le32(raw, 4 * i));
            }
            return out;
        }
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            if (width == 4) {
                out[i] = le32(raw, 4 * i);
            } else if (width == 8) {
                long v = (le32(raw, 8 * i) & 0xffffffffL) | ((long) le32(raw, 8 * i + 4)) << 32;
                if (v != (int) v) {
                    throw new ModelException(what + " holds INT64 value " + v
                            + " outside the 32-bit range");
                }
                out[i] = (int) v;
            } else {
                out[i] = type == INT8 ? raw[i] : raw[i] & 0xff;
            }
        }
        return out;
    }

    private static int le32(byte[] b, int p) {
        return (b[p] & 0xff) | (b[p + 1] & 0xff) << 8 | (b[p + 2] & 0xff) << 16
                | (b[p + 3] & 0xff) << 24;
    }
}
