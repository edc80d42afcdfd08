package xnor.tflite;

import java.util.Arrays;

/** Element-wise, reduction and data-movement operators. */
final class ElementKernels {
    private ElementKernels() {}

    /** ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM with NumPy broadcasting and a fused activation. */
    static final class Binary extends Kernel {
        private final int code, act, a, b, output;
        private final int[] outShape, aStrides, bStrides;
        private final int aSize, bSize, outSize;
        private final boolean aTrailing, bTrailing, aLeading, bLeading;

        Binary(Model m, Model.Operator op) {
            super(m, op);
            expectCounts(2, 2, 1);
            code = op.builtinCode;
            Model.Tensor x = type(in(0), Model.FLOAT32);
            Model.Tensor y = type(in(1), Model.FLOAT32);
            int optionsType = code == BuiltinOps.ADD ? 11 : code == BuiltinOps.MUL ? 21
                    : code == BuiltinOps.SUB ? 28 : code == BuiltinOps.DIV ? 29 : 39;
            FlatBuffer.Table opt = options(optionsType);
            boolean hasAct = code != BuiltinOps.MAXIMUM && code != BuiltinOps.MINIMUM;
            act = activation(opt != null && hasAct ? opt.i8(0, 0) : 0);
            outShape = Shapes.broadcast(x.shape, y.shape);
            if (outShape == null) {
                throw error("cannot broadcast " + x + " with " + y);
            }
            expectOutputShape(type(out(0), Model.FLOAT32), outShape);
            aStrides = strides(x.shape, outShape);
            bStrides = strides(y.shape, outShape);
            aSize = x.size();
            bSize = y.size();
            outSize = Shapes.size(outShape);
            aTrailing = isBlock(aStrides, aSize, true);
            bTrailing = isBlock(bStrides, bSize, true);
            aLeading = isBlock(aStrides, aSize, false);
            bLeading = isBlock(bStrides, bSize, false);
            a = op.inputs[0];
            b = op.inputs[1];
            output = op.outputs[0];
        }

        /** Strides of {@code shape} aligned to {@code out}'s axes, 0 where broadcast. */
        private static int[] strides(int[] shape, int[] out) {
            int[] s = new int[out.length];
            int stride = 1;
            for (int i = out.length - 1; i >= 0; i--) {
                int j = i - (out.length - shape.length);
                int d = j >= 0 ? shape[j] : 1;
                s[i] = d == 1 ? 0 : stride;
                stride *= d;
            }
            return s;
        }

        /** z[zo + i] = x[xo + i·xs] ∘ y[yo + i·ys] for i < n (strides 0 or 1). */
        private void combine(float[] x, int xo, int xs, float[] y, int yo, int ys, float[] z,
                int zo, int n) {
            switch (code) {
                case BuiltinOps.ADD:
                    for (int i = 0; i < n; i++) {
                        z[zo + i] = x[xo + i * xs] + y[yo + i * ys];
                    }
                    break;
                case BuiltinOps.MUL:
                    for (int i = 0; i < n; i++) {
                        z[zo + i] = x[xo + i * xs] * y[yo + i * ys];
                    }
                    break;
                default:
                    for (int i = 0; i < n; i++) {
                        z[zo + i] = apply(x[xo + i * xs], y[yo + i * ys]);
                    }
            }
        }

        private float apply(float p, float q) {
            switch (code) {
                case BuiltinOps.ADD:
                    return p + q;
                case BuiltinOps.SUB:
                    return p - q;
                case BuiltinOps.MUL:
                    return p * q;
                case BuiltinOps.DIV:
                    return p / q;
                case BuiltinOps.MAXIMUM:
                    return Math.max(p, q);
                default:
                    return Math.min(p, q);
            }
        }

        @Override
        void run(Object[] values) {
            float[] x = (float[]) values[a];
            float[] y = (float[]) values[b];
            float[] z = (float[]) values[output];
            // Runs over which both operands advance by 0 or 1 element (vectorizable loops).
            if (aSize == outSize && bSize == outSize) {
                combine(x, 0, 1, y, 0, 1, z, 0, outSize);
            } else if (aSize == outSize && bTrailing) {
                for (int r = 0; r < outSize; r += bSize) {
                    combine(x, r, 1, y, 0, 1, z, r, bSize);
                }
            } else if (bSize == outSize && aTrailing) {
                for (int r = 0; r < outSize; r += aSize) {
                    combine(x, 0, 1, y, r, 1, z, r, aSize);
                }
            } else if (aSize == outSize && bLeading) {
                int inner = outSize / bSize;
                for (int j = 0; j < bSize; j++) {
                    combine(x, j * inner, 1, y, j, 0, z, j * inner, inner);
                }
            } else if (bSize == outSize && aLeading) {
                int inner = outSize / aSize;
                for (int j = 0; j < aSize; j++) {
                    combine(x, j, 0, y, j * inner, 1, z, j * inner, inner);
                }
            } else {
                Odometer it = new Odometer(outShape, aStrides, bStrides);
                for (int i = 0; i < outSize; i++) {
                    z[i] = apply(x[it.offset[0]], y[it.offset[1]]);
                    it.next();
                }
            }
            applyActivation(z, act);
        }

        /**
         * True if the operand spans a block of the output's axes and is broadcast over the
         * rest: over the leading axes ({@code trailing}: index = i mod size, e.g. a per-channel
         * scale) or over the trailing axes (index = i / (outSize / size), e.g. a per-pixel K).
         */
        private boolean isBlock(int[] s, int size, boolean trailing) {
            int expected = 1;
            boolean seenBroadcast = false, seenData = false;
            for (int k = 0; k < outShape.length; k++) {
                int d = trailing ? outShape.length - 1 - k : k;
                if (outShape[d] == 1) {
                    continue;
                }
                if (s[d] == 0) {
                    seenBroadcast = true;
                } else if (seenBroadcast) {
                    return false;
                } else {
                    seenData = true;
                }
            }
            for (int d = 0; d < outShape.length; d++) {
                if (s[d] != 0) {
                    expected *= outShape[d];
                }
            }
            return (seenData || size == 1) && expected == size;
        }
    }

    /** ABS, SIGN, RELU, RELU6, RELU_N1_TO_1, LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU. */
    static final class Unary extends Kernel {
        private final int code, input, output;
        private final float alpha;

        Unary(Model m, Model.Operator op) {
            super(m, op);
            expectCounts(1, 1, 1);
            code = op.builtinCode;
            Model.Tensor x = type(in(0), Model.FLOAT32);
            expectOutputShape(type(out(0), Model.FLOAT32), x.shape);
            FlatBuffer.Table opt = code == BuiltinOps.LEAKY_RELU ? options(75) : null;
            alpha = opt == null ? 0f : opt.f32(0, 0f);
            input = op.inputs[0];
            output = op.outputs[0];
        }

        @Override
        void run(Object[] values) {
            float[] x = (float[]) values[input];
            float[] y = (float[]) values[output];
            for (int i = 0; i < x.length; i++) {
                float v = x[i];
                switch (code) {
                    case BuiltinOps.ABS:
                        v = Math.abs(v);
                        break;
                    case BuiltinOps.SIGN:
                        v = v > 0 ? 1f : v < 0 ? -1f : v; // sign(0) = 0, NaN stays NaN
                        break;
                    case BuiltinOps.RELU:
                        v = Math.max(v, 0f);
                        break;
                    case BuiltinOps.RELU6:
                        v = Math.min(Math.max(v, 0f), 6f);
                        break;
                    case BuiltinOps.RELU_N1_TO_1:
                        v = Math.min(Math.max(v, -1f), 1f);
                        break;
                    case BuiltinOps.LOGISTIC:
                        v = (float) (1.0 / (1.0 + Math.exp(-v)));
                        break;
                    case BuiltinOps.TANH:
                        v = (float) Math.tanh(v);
                        break;
                    case BuiltinOps.HARD_SWISH:
                        v = v * Math.min(Math.max(v + 3f, 0f), 6f) / 6f;
                        break;
                    default: // LEAKY_RELU
                        v = v >= 0 ? v : v * alpha;
                        break;
                }
                y[i] = v;
            }
        }
    }

    /** MEAN and SUM over constant axes, with or without keep_dims. */
    static final class Reduce extends Kernel {
        private final boolean mean;
        private final int input, output, count;
        private final int[] inShape, outStrides;
        private final int blockOuter, blockMiddle, blockInner;

        Reduce(Model m, Model.Operator op) {
            super(m, op);
            expectCounts(2, 2, 1);
            mean = op.builtinCode == BuiltinOps.MEAN;
            Model.Tensor x = type(in(0), Model.FLOAT32);
            int[] axes = constantInts(in(1));
            FlatBuffer.Table opt = options(27);
            boolean keep = opt != null && opt.bool(0, false);
            int rank = x.shape.length;
            boolean[] reduced = new boolean[rank];
            for (int a : axes) {
                int axis = a < 0 ? a + rank : a;
                if (axis < 0 || axis >= rank) {
                    throw error("axis " + a + " is out of range for " + x);
                }
                reduced[axis] = true;
            }
            int kept = 0;
            int n = 1;
            for (int d = 0; d < rank; d++) {
                if (reduced[d]) {
                    n *= x.shape[d];
                } else {
                    kept++;
                }
            }
            count = n;
            int[] shape = new int[keep ? rank : kept];
            for (int d = 0, j = 0; d < rank; d++) {
                if (keep) {
                    shape[d] = reduced[d] ? 1 : x.shape[d];
                } else if (!reduced[d]) {
                    shape[j++] = x.shape[d];
                }
            }
            expectOutputShape(type(out(0), Model.FLOAT32), shape);
            inShape = x.shape.clone();
            outStrides = new int[rank];
            int stride = 1;
            for (int d = rank - 1; d >= 0; d--) {
                outStrides[d] = reduced[d] ? 0 : stride;
                stride *= reduced[d] ? 1 : x.shape[d];
            }
            int first = -1, last = -1, blocks = 0;
            for (int d = 0; d < rank; d++) {
                if (reduced[d] && (d == 0 || !reduced[d - 1])) {
                    blocks++;
                    first = d;
                }
                if (reduced[d]) {
                    last = d;
                }
            }
            if (blocks == 1) {
                blockOuter = Shapes.size(Arrays.copyOfRange(x.shape, 0, first));
                blockMiddle = Shapes.size(Arrays.copyOfRange(x.shape, first, last + 1));
                blockInner = Shapes.size(Arrays.copyOfRange(x.shape, last + 1, rank));
            } else {
                blockOuter = blockMiddle = blockInner = 0;
            }
            input = op.inputs[0];
            output = op.outputs[0];
        }

        @Override
        void run(Object[] values) {
            float[] x = (float[]) values[input];
            float[] y = (float[]) values[output];
            Arrays.fill(y, 0f);
            if (blockInner > 0) {
                // One contiguous block of reduced axes: y[o, i] = Σ_m x[o, m, i], m in order.
                for (int o = 0; o < blockOuter; o++) {
                    for (int m = 0; m < blockMiddle; m++) {
                        int base = (o * blockMiddle + m) * blockInner;
                        int out = o * blockInner;
                        for (int i = 0; i < blockInner; i++) {
                            y[out + i] += x[base + i];
                        }
                    }
                }
                finish(y);
                return;
            }
            Odometer it = new Odometer(inShape, outStrides);
            for (int i = 0; i < x.length; i++) {
                y[it.offset[0]] += x[i];
                it.next();
            }
            finish(y);
        }

        private void finish(float[] y) {
            if (mean) {
                for (int i = 0; i < y.length; i++) {
                    y[i] /= count;
                }
            }
        }
    }

    /** RESHAPE and SQUEEZE: the same data under the shape the file declares. */
    static final class Reshape extends Kernel {
        private final int input, output;

        Reshape(Model m, Model.Operator op) {
            super(m, op);
            expectCounts(1, 2, 1);
            Model.Tensor x = in(0);
            Model.Tensor y = out(0);
            if (x.type != Model.FLOAT32 && x.type != Model.INT32) {
                type(x, Model.FLOAT32);
            }
            type(y, x.type);
            if (x.size() != y.size()) {
                throw error("cannot reshape " + x + " to " + y);
            }
            input = op.inputs[0];
            output = op.outputs[0];
        }

        @Override
        void run(Object[] values) {
            Object x = values[input];
            System.arraycopy(x, 0, values[output], 0, java.lang.reflect.Array.getLength(x));
        }
    }

    /** PAD and PADV2 with a constant [rank, 2] paddings tensor. */
    static final class Pad extends Kernel {
        private final int input, output, valueTensor;
        private final int[] inShape, outShape, before;

        Pad(Model m, Model.Operator op) {
            super(m, op);
            boolean v2 = op.builtinCode == BuiltinOps.PADV2;
            expectCounts(2, v2 ? 3 : 2, 1);
            Model.Tensor x = type(in(0), Model.FLOAT32);
            Model.Tensor p = in(1);
            int[] pads = constantInts(p);
            int rank = x.shape.length;
            if (pads.length != 2 * rank) {
                throw error("paddings " + p + " must be [" + rank + ", 2]");
            }
            Model.Tensor v = v2 ? optionalIn(2) : null;
            if (v != null && type(v, Model.FLOAT32).size() != 1) {
                throw error("pad value " + v + " must be a scalar");
            }
            valueTensor = v == null ? -1 : op.inputs[2];
            before = new int[rank];
            outShape = new int[rank];
            for (int d = 0; d < rank; d++) {
                if (pads[2 * d] < 0 || pads[2 * d + 1] < 0) {
                    throw error("negative padding in " + p);
                }
                before[d] = pads[2 * d];
                outShape[d] = x.shape[d] + pads[2 * d] + pads[2 * d + 1];
            }
            expectOutputShape(type(out(0), Model.FLOAT32), outShape);
            inShape = x.shape.clone();
            input = op.inputs[0];
            output = op.outputs[0];
        }

        @Override
        void run(Object[] values) {
            float[] x = (float[]) values[input];
            float[] y = (float[]) values[output];
            float fill = valueTensor < 0 ? 0f : ((float[]) values[valueTensor])[0];
            Arrays.fill(y, fill);
            int rank = inShape.length;
            int[] outStrides = new int[rank];
            int s = 1;
            for (int d = rank - 1; d >= 0; d--) {
                outStrides[d] = s;
                s *= outShape[d];
            }
            int start = 0;
            for (int d = 0; d < rank; d++) {
                start += before[d] * outStrides[d];
            }
            Odometer it = new Odometer(inShape, outStrides);
            it.reset(start);
            for (int i = 0; i < x.length; i++) {
                y[it.offset[0]] = x[i];
                it.next();
            }
        }
    }

    /** CONCATENATION along one axis, with a fused activation. */
    static final class Concatenation extends Kernel {
        private final int output, act, outer;
        private final int[] inputs, chunk;

        Concatenation(Model m, Model.Operator op) {
            super(m, op);
            if (op.inputs.length < 1 || op.outputs.length != 1) {
                throw error("needs at least one input and exactly one output");
            }
            FlatBuffer.Table opt = options(10);
            int axis = opt == null ? 0 : opt.i32(0, 0);
            act = activation(opt == null ? 0 : opt.i8(1, 0));
            Model.Tensor first = in(0);
            int type = first.type;
            if (type != Model.FLOAT32 && type != Model.INT32) {
                type(first, Model.FLOAT32);
            }
            if (act != ACT_NONE) {
                type(first, Model.FLOAT32);
            }
            int rank = first.shape.length;
            if (axis < 0) {
                axis += rank;
            }
            if (axis < 0 || axis >= rank) {
                throw error("axis " + axis + " is out of range for rank " + rank);
            }
            int[] shape = first.shape.clone();
            shape[axis] = 0;
            inputs = new int[op.inputs.length];
            chunk = new int[op.inputs.length];
            int inner = 1;
            for (int d = axis + 1; d < rank; d++) {
                inner *= first.shape[d];
            }
            int o = 1;
            for (int d = 0; d < axis; d++) {
                o *= first.shape[d];
            }
            outer = o;
            for (int i = 0; i < op.inputs.length; i++) {
                Model.Tensor t = type(in(i), type);
                if (t.shape.length != rank) {
                    throw error(t + " has a different rank than " + first);
                }
                for (int d = 0; d < rank; d++) {
                    if (d != axis && t.shape[d] != first.shape[d]) {
                        throw error(t + " does not match " + first + " outside axis " + axis);
                    }
                }
                shape[axis] += t.shape[axis];
                inputs[i] = op.inputs[i];
                chunk[i] = t.shape[axis] * inner;
            }
            expectOutputShape(type(out(0), type), shape);
            output = op.outputs[0];
        }

        @Override
        void run(Object[] values) {
            Object y = values[output];
            int total = 0;
            for (int c : chunk) {
                total += c;
            }
            for (int i = 0; i < inputs.length; i++) {
                Object x = values[inputs[i]];
                int offset = 0;
                for (int j = 0; j < i; j++) {
                    offset += chunk[j];
                }
                for (int o = 0; o < outer; o++) {
                    System.arraycopy(x, o * chunk[i], y, o * total + offset, chunk[i]);
                }
            }
            if (y instanceof float[]) {
                applyActivation((float[]) y, act);
            }
        }
    }

    /** SOFTMAX over the last axis: exp(beta·(x − max)) / Σ. */
    static final class Softmax extends Kernel {
        private final int input, output, depth;
        private final float beta;

        Softmax(Model m, Model.Operator op) {
            super(m, op);
            expectCounts(1, 1, 1);
            Model.Tensor x = type(in(0), Model.FLOAT32);
            if (x.shape.length < 1) {
                throw error(x + " must have at least one axis");
            }
            expectOutputShape(type(out(0), Model.FLOAT32), x.shape);
            FlatBuffer.Table opt = options(9);
            beta = opt == null ? 1f : opt.f32(0, 0f);
            depth = x.shape[x.shape.length - 1];
            input = op.inputs[0];
            output = op.outputs[0];
        }

        @Override
        void run(Object[] values) {
            float[] x = (float[]) values[input];
            float[] y = (float[]) values[output];
            for (int r = 0; r + depth <= x.length && depth > 0; r += depth) {
                float max = Float.NEGATIVE_INFINITY;
                for (int i = 0; i < depth; i++) {
                    max = Math.max(max, x[r + i]);
                }
                float sum = 0f;
                for (int i = 0; i < depth; i++) {
                    float e = (float) Math.exp((x[r + i] - max) * beta);
                    y[r + i] = e;
                    sum += e;
                }
                for (int i = 0; i < depth; i++) {
                    y[r + i] /= sum;
                }
            }
        }
    }
}
