package xnor.tflite;

import java.nio.ByteBuffer;

/**
 * The larq-compute-engine custom operators.
 *
 * <p>LCE stores binary tensors bitpacked along the last (channel) axis in 32-bit words:
 * channel 32·k + i is bit i of word k, bit 1 means −1 and bit 0 means +1, and unused high
 * bits of the last word are 0. The binary convolution here repacks each pixel's words into
 * 64-bit words (two LCE words per long, low word first) and counts disagreements with
 * {@link Long#bitCount} of the XOR. LceQuantize, LceBMaxPool2d and LceBconv2d run native/'s
 * kernels through {@link NativeKernels} when that library is loaded.
 */
final class LceKernels {
    private LceKernels() {}

    static int words32(int channels) {
        return (channels + 31) >>> 5;
    }

    /** LceQuantize: float [..., C] → bitpacked int32 [..., ceil(C/32)], bit = (x < 0). */
    static final class Quantize extends Kernel {
        private final int input, output, channels, rows;

        Quantize(Model m, Model.Operator op) {
            super(m, op);
            expectCounts(1, 1, 1);
            Model.Tensor x = type(in(0), Model.FLOAT32);
            if (x.shape.length < 1) {
                throw error(x + " must have a channel axis");
            }
            channels = x.shape[x.shape.length - 1];
            int[] shape = x.shape.clone();
            shape[shape.length - 1] = words32(channels);
            expectOutputShape(type(out(0), Model.INT32), shape);
            rows = channels == 0 ? 0 : x.size() / channels;
            input = op.inputs[0];
            output = op.outputs[0];
        }

        @Override
        void run(Object[] values) {
            float[] x = (float[]) values[input];
            int[] y = (int[]) values[output];
            if (NativeKernels.LOADED && channels > 0) {
                runNative(x, y);
                return;
            }
            int words = words32(channels);
            for (int r = 0; r < rows; r++) {
                int xo = r * channels;
                int yo = r * words;
                for (int w = 0; w < words; w++) {
                    int end = Math.min(32, channels - 32 * w);
                    int bits = 0;
                    for (int i = 0; i < end; i++) {
                        if (x[xo + 32 * w + i] < 0f) {
                            bits |= 1 << i;
                        }
                    }
                    y[yo + w] = bits;
                }
            }
        }

        private final NativeKernels.Buffers io = new NativeKernels.Buffers();

        private void runNative(float[] x, int[] y) {
            io.in(x.length).asFloatBuffer().put(x);
            final ByteBuffer in = io.in, out = io.out(y.length);
            NativeKernels.parallel(rows, new NativeKernels.Rows() {
                @Override
                public void run(int begin, int end) {
                    NativeKernels.quantize(in, out, rows, channels, begin, end);
                }
            });
            out.asIntBuffer().get(y);
        }
    }

    /** LceDequantize: bitpacked int32 [..., ceil(C/32)] → float [..., C] of ±1. */
    static final class Dequantize extends Kernel {
        private final int input, output, channels, rows;

        Dequantize(Model m, Model.Operator op) {
            super(m, op);
            expectCounts(1, 1, 1);
            Model.Tensor x = type(in(0), Model.INT32);
            Model.Tensor y = type(out(0), Model.FLOAT32);
            if (y.shape.length < 1 || y.shape.length != x.shape.length) {
                throw error(y + " must have the rank of " + x);
            }
            channels = y.shape[y.shape.length - 1];
            int[] shape = y.shape.clone();
            shape[shape.length - 1] = words32(channels);
            if (!java.util.Arrays.equals(shape, x.shape)) {
                throw error(x + " is not the bitpacked form of " + y);
            }
            rows = channels == 0 ? 0 : y.size() / channels;
            input = op.inputs[0];
            output = op.outputs[0];
        }

        @Override
        void run(Object[] values) {
            int[] x = (int[]) values[input];
            float[] y = (float[]) values[output];
            int words = words32(channels);
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < channels; c++) {
                    int bit = (x[r * words + (c >>> 5)] >>> (c & 31)) & 1;
                    y[r * channels + c] = bit == 0 ? 1f : -1f;
                }
            }
        }
    }

    /** LceBMaxPool2d: max-pooling of ±1 values, i.e. AND of the bitpacked words. */
    static final class BMaxPool2d extends Kernel {
        private final ConvKernels.Window g;
        private final int words, input, output;

        BMaxPool2d(Model m, Model.Operator op) {
            super(m, op);
            expectCounts(1, 1, 1);
            Model.Tensor x = rank(type(in(0), Model.INT32), 4);
            words = x.shape[3];
            g = new ConvKernels.Window(this, x.shape, customInt("filter_height"),
                    customInt("filter_width"), customInt("stride_height"),
                    customInt("stride_width"), 1, 1, customInt("padding"));
            expectOutputShape(type(out(0), Model.INT32), new int[] {g.n, g.oh, g.ow, words});
            input = op.inputs[0];
            output = op.outputs[0];
        }

        @Override
        void run(Object[] values) {
            int[] x = (int[]) values[input];
            int[] y = (int[]) values[output];
            if (NativeKernels.LOADED) {
                runNative(x, y);
                return;
            }
            int yi = 0;
            for (int n = 0; n < g.n; n++) {
                for (int oy = 0; oy < g.oh; oy++) {
                    int y0 = g.rowStart(oy);
                    int y1 = g.rowEnd(oy);
                    for (int ox = 0; ox < g.ow; ox++) {
                        int x0 = g.colStart(ox);
                        int x1 = g.colEnd(ox);
                        for (int w = 0; w < words; w++) {
                            int acc = -1;
                            for (int iy = y0; iy < y1; iy++) {
                                for (int ix = x0; ix < x1; ix++) {
                                    acc &= x[((n * g.h + iy) * g.w + ix) * words + w];
                                }
                            }
                            y[yi++] = acc;
                        }
                    }
                }
            }
        }

        private final NativeKernels.Buffers io = new NativeKernels.Buffers();

        private void runNative(int[] x, int[] y) {
            io.in(x.length).asIntBuffer().put(x);
            final ByteBuffer in = io.in, out = io.out(y.length);
            final int[] geometry = {g.n, g.h, g.w, words, g.kh, g.kw, g.sh, g.sw, g.oh, g.ow,
                g.padTop, g.padLeft};
            NativeKernels.parallel(g.n * g.oh, new NativeKernels.Rows() {
                @Override
                public void run(int begin, int end) {
                    NativeKernels.bmaxpool(in, out, geometry, begin, end);
                }
            });
            out.asIntBuffer().get(y);
        }
    }

    /**
     * LceBconv2d: binary convolution of a bitpacked input with bitpacked ±1 filters.
     *
     * <p>Inputs: bitpacked input [N,H,W,ceil(C/32)], filter [O,KH,KW,ceil(C/(32·groups))],
     * post-activation multiplier [O] and bias [O] (float output), thresholds [O] (bitpacked
     * output). With K = KH·KW·C/groups taps and a = number of disagreeing bits, the ±1
     * convolution is y = K − 2a; the float output is clamp(y)·multiplier + bias (clamp from
     * the fused activation) and the bitpacked output bit is (a > threshold). Padding "one"
     * (pad_values=1) treats outside pixels as +1, padding "zero" as 0 (no contribution).
     * The arithmetic follows LCE's fused form so that results agree to float rounding.
     */
    static final class BConv2d extends Kernel {
        private final ConvKernels.Window g;
        private final int cin, cinGroup, cout, groups, w32g, w64g, taps, act;
        private final boolean zeroPadding, bitpackedOutput;
        private final int input, output;
        private final long[] filters; // [groups][taps·w64g][O/groups]
        private final int[] counts;
        private final int[] tapPop; // [O][taps]: set bits of each filter tap
        private final float[] mulPrime, biasPrime, negMul, mul, bias;
        private final int[] thresholds;
        private final int clampMin, clampMax, actLo, actHi;
        private final long[] patch;
        private final boolean[] outside;

        BConv2d(Model m, Model.Operator op) {
            super(m, op);
            expectCounts(5, 5, 1);
            Model.Tensor x = rank(type(in(0), Model.INT32), 4);
            Model.Tensor f = rank(type(in(1), Model.INT32), 4);
            if (!f.isConstant()) {
                throw error("filter " + f + " must be constant");
            }
            cin = customInt("channels_in");
            if (cin < 1) {
                throw error("channels_in = " + cin + " must be >= 1");
            }
            int padValue = customInt("pad_values", 0);
            if (padValue != 0 && padValue != 1) {
                throw error("pad_values = " + padValue + " must be 0 or 1");
            }
            int padding = customInt("padding");
            act = activation(customInt("fused_activation_function", 0));
            cout = f.shape[0];
            w32g = f.shape[3];
            if (x.shape[3] != words32(cin)) {
                throw error("input " + x + " does not hold " + cin + " bitpacked channels");
            }
            if (w32g == words32(cin)) {
                groups = 1;
            } else {
                if (w32g < 1 || words32(cin) % w32g != 0) {
                    throw error("filter " + f + " does not fit " + cin + " input channels");
                }
                groups = words32(cin) / w32g;
                if (cin % groups != 0 || (cin / groups) % 32 != 0 || cout % groups != 0) {
                    throw error(groups + " groups do not divide " + cin + " input and "
                            + cout + " output channels in whole 32-bit words");
                }
            }
            cinGroup = cin / groups;
            w64g = (w32g + 1) / 2;
            g = new ConvKernels.Window(this, x.shape, f.shape[1], f.shape[2],
                    customInt("stride_height"), customInt("stride_width"),
                    customInt("dilation_height_factor", 1), customInt("dilation_width_factor", 1),
                    padding);
            taps = g.kh * g.kw;
            zeroPadding = padding == 0 && padValue == 0;
            Model.Tensor y = out(0);
            if (y.type == Model.INT32) {
                bitpackedOutput = true;
                Model.Tensor t = optionalIn(4);
                if (t == null || !t.isConstant() || type(t, Model.INT32).size() != cout) {
                    throw error("bitpacked output needs " + cout + " constant INT32 thresholds");
                }
                thresholds = (int[]) t.constant;
                expectOutputShape(y, new int[] {g.n, g.oh, g.ow, words32(cout)});
            } else if (y.type == Model.FLOAT32) {
                bitpackedOutput = false;
                thresholds = null;
                expectOutputShape(y, new int[] {g.n, g.oh, g.ow, cout});
            } else {
                throw error("output " + y + " has type " + Model.typeName(y.type)
                        + "; only FLOAT32 and bitpacked INT32 outputs are supported");
            }
            // Filters, repacked to 64-bit words per tap.
            int[] f32 = (int[]) f.constant;
            filters = new long[cout * taps * w64g];
            tapPop = new int[cout * taps];
            for (int o = 0; o < cout; o++) {
                for (int t = 0; t < taps; t++) {
                    int src = (o * taps + t) * w32g;
                    int pop = 0;
                    for (int j = 0; j < w64g; j++) {
                        long lo = f32[src + 2 * j] & 0xffffffffL;
                        long hi = 2 * j + 1 < w32g ? (long) f32[src + 2 * j + 1] << 32 : 0L;
                        // Transposed per group: [group][tap·word][output in group].
                        int grp = o / (cout / groups);
                        int i = t * w64g + j;
                        filters[(grp * taps * w64g + i) * (cout / groups) + o % (cout / groups)]
                                = lo | hi;
                        pop += Long.bitCount(lo | hi);
                    }
                    tapPop[o * taps + t] = pop;
                }
            }
            // Output transform (float output): LCE's fused multiplier and bias.
            int k = taps * cinGroup;
            if (!bitpackedOutput) {
                Model.Tensor mt = optionalIn(2);
                Model.Tensor bt = optionalIn(3);
                if (mt == null || bt == null || !mt.isConstant() || !bt.isConstant()
                        || type(mt, Model.FLOAT32).size() != cout
                        || type(bt, Model.FLOAT32).size() != cout) {
                    throw error("float output needs constant FLOAT32 post-activation "
                            + "multiplier and bias of " + cout + " values");
                }
                mul = (float[]) mt.constant;
                bias = (float[]) bt.constant;
                mulPrime = new float[cout];
                biasPrime = new float[cout];
                negMul = new float[cout];
                for (int o = 0; o < cout; o++) {
                    mulPrime[o] = (float) (-1.0 * mul[o]);
                    biasPrime[o] = (float) ((double) bias[o] + (double) k * mul[o]);
                    negMul[o] = -1.0f * mul[o];
                }
            } else {
                mul = bias = mulPrime = biasPrime = negMul = null;
            }
            // The fused activation clamps y = K − 2a to [lo, hi]; on 2a that is [K−hi, K−lo].
            int lo = act == ACT_RELU || act == ACT_RELU6 ? 0 : act == ACT_RELU_N1_TO_1 ? -1
                    : Integer.MIN_VALUE;
            int hi = act == ACT_RELU6 ? 6 : act == ACT_RELU_N1_TO_1 ? 1 : Integer.MAX_VALUE;
            actLo = Math.max(lo, -k);
            actHi = Math.min(hi, k);
            clampMin = k - actHi;
            clampMax = k - actLo;
            patch = new long[taps * w64g];
            counts = new int[cout / groups];
            outside = new boolean[taps];
            input = op.inputs[0];
            output = op.outputs[0];
            if (NativeKernels.LOADED) {
                prepareNative(f32, padding, padValue);
            }
        }

        // The native plan (filter packed for the library's ISA, output transform) and the
        // tensors' direct buffers; each thread that runs a task range brings its own scratch.
        private ByteBuffer plan, nativeIn, nativeOut;
        private int nativeTasks;
        private ThreadLocal<ByteBuffer> scratch;

        private void prepareNative(int[] f32, int padding, int padValue) {
            int[] spec = {g.n, g.h, g.w, cin, groups, cout, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw,
                padding == 0 ? 1 : 0, padValue, act, bitpackedOutput ? 2 : 0,
                Float.floatToRawIntBits(1f), 0};
            ByteBuffer filter = NativeKernels.direct(4L * f32.length);
            filter.asIntBuffer().put(f32);
            ByteBuffer m = null, b = null, t = null;
            if (bitpackedOutput) {
                t = NativeKernels.direct(4L * cout);
                t.asIntBuffer().put(thresholds);
            } else {
                m = NativeKernels.direct(4L * cout);
                m.asFloatBuffer().put(mul);
                b = NativeKernels.direct(4L * cout);
                b.asFloatBuffer().put(bias);
            }
            try {
                plan = NativeKernels.direct(NativeKernels.bconvPlanBytes(spec));
                NativeKernels.bconvPrepare(spec, filter, m, b, t, plan);
            } catch (IllegalArgumentException e) {
                // Never a silent fallback: a model the Java kernels accept must run natively.
                throw error("native LceBconv2d rejected it: " + e.getMessage());
            }
            int oh = (int) NativeKernels.bconvQuery(plan, 0, 1);
            int ow = (int) NativeKernels.bconvQuery(plan, 1, 1);
            if (oh != g.oh || ow != g.ow) {
                throw error("native output " + oh + "x" + ow + " != " + g.oh + "x" + g.ow);
            }
            nativeTasks = (int) NativeKernels.bconvQuery(plan, 4, NativeKernels.THREADS);
            final long scratchBytes = NativeKernels.bconvQuery(plan, 3, 1);
            nativeIn = NativeKernels.direct(4L * g.n * g.h * g.w * groups * w32g);
            nativeOut = NativeKernels.direct(NativeKernels.bconvQuery(plan, 5, 1));
            scratch = new ThreadLocal<ByteBuffer>() {
                @Override
                protected ByteBuffer initialValue() {
                    return NativeKernels.direct(scratchBytes);
                }
            };
        }

        private void runNative(int[] x, Object y) {
            nativeIn.asIntBuffer().put(x);
            NativeKernels.parallel(nativeTasks, new NativeKernels.Rows() {
                @Override
                public void run(int begin, int end) {
                    NativeKernels.bconvRun(plan, nativeIn, nativeOut, scratch.get(),
                            NativeKernels.THREADS, begin, end);
                }
            });
            if (bitpackedOutput) {
                nativeOut.asIntBuffer().get((int[]) y);
            } else {
                nativeOut.asFloatBuffer().get((float[]) y);
            }
        }

        @Override
        void run(Object[] values) {
            int[] x = (int[]) values[input];
            Object yv = values[output];
            if (plan != null) {
                runNative(x, yv);
                return;
            }
            float[] yf = bitpackedOutput ? null : (float[]) yv;
            int[] yb = bitpackedOutput ? (int[]) yv : null;
            int wordsIn = groups * w32g;
            int wordsOut = words32(cout);
            int perGroup = cout / groups;
            int len = taps * w64g;
            int k = taps * cinGroup;
            int pixel = 0;
            for (int n = 0; n < g.n; n++) {
                for (int oy = 0; oy < g.oh; oy++) {
                    for (int ox = 0; ox < g.ow; ox++, pixel++) {
                        int nOutside = 0;
                        for (int ky = 0, t = 0; ky < g.kh; ky++) {
                            int iy = oy * g.sh - g.padTop + ky * g.dh;
                            for (int kx = 0; kx < g.kw; kx++, t++) {
                                int ix = ox * g.sw - g.padLeft + kx * g.dw;
                                outside[t] = iy < 0 || iy >= g.h || ix < 0 || ix >= g.w;
                                if (outside[t]) {
                                    nOutside++;
                                }
                            }
                        }
                        if (bitpackedOutput) {
                            java.util.Arrays.fill(yb, pixel * wordsOut, (pixel + 1) * wordsOut, 0);
                        }
                        for (int grp = 0; grp < groups; grp++) {
                            // Gather this group's patch; outside pixels are word 0 (+1 bits).
                            for (int ky = 0, t = 0; ky < g.kh; ky++) {
                                int iy = oy * g.sh - g.padTop + ky * g.dh;
                                for (int kx = 0; kx < g.kw; kx++, t++) {
                                    int ix = ox * g.sw - g.padLeft + kx * g.dw;
                                    int dst = t * w64g;
                                    if (outside[t]) {
                                        for (int j = 0; j < w64g; j++) {
                                            patch[dst + j] = 0L;
                                        }
                                        continue;
                                    }
                                    int src = ((n * g.h + iy) * g.w + ix) * wordsIn + grp * w32g;
                                    for (int j = 0; j < w64g; j++) {
                                        long lo = x[src + 2 * j] & 0xffffffffL;
                                        long hi = 2 * j + 1 < w32g
                                                ? (long) x[src + 2 * j + 1] << 32 : 0L;
                                        patch[dst + j] = lo | hi;
                                    }
                                }
                            }
                            // Disagreeing bits per output channel; output channels innermost
                            // over the transposed filters keeps the popcount loop long.
                            java.util.Arrays.fill(counts, 0);
                            int base = grp * len * perGroup;
                            for (int i = 0; i < len; i++) {
                                long p = patch[i];
                                int fo = base + i * perGroup;
                                for (int q = 0; q < perGroup; q++) {
                                    counts[q] += Long.bitCount(p ^ filters[fo + q]);
                                }
                            }
                            for (int o = grp * perGroup; o < (grp + 1) * perGroup; o++) {
                                int a = counts[o - grp * perGroup];
                                // Σ over outside taps of the +1-padding contribution (C − 2·pop).
                                int correction = 0;
                                int outsidePop = 0;
                                if (zeroPadding && nOutside > 0) {
                                    for (int t = 0; t < taps; t++) {
                                        if (outside[t]) {
                                            correction += cinGroup - 2 * tapPop[o * taps + t];
                                            outsidePop += tapPop[o * taps + t];
                                        }
                                    }
                                }
                                if (bitpackedOutput) {
                                    // LCE's reference: an outside tap counts C/2 disagreements.
                                    int accum = zeroPadding
                                            ? a - outsidePop + nOutside * (cinGroup / 2) : a;
                                    if (accum > thresholds[o]) {
                                        yb[pixel * wordsOut + (o >>> 5)] |= 1 << (o & 31);
                                    }
                                } else if (zeroPadding && nOutside > 0 && act != ACT_NONE) {
                                    int yTrue = k - 2 * a - correction;
                                    yTrue = Math.min(Math.max(yTrue, actLo), actHi);
                                    yf[pixel * cout + o] = yTrue * mul[o] + bias[o];
                                } else {
                                    int twoA = Math.min(Math.max(a << 1, clampMin), clampMax);
                                    float v = (float) twoA * mulPrime[o] + biasPrime[o];
                                    if (correction != 0) {
                                        v += negMul[o] * (float) correction;
                                    }
                                    yf[pixel * cout + o] = v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
