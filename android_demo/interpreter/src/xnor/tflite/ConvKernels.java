package xnor.tflite;

/** Float convolutions, fully-connected layers and pooling (NHWC, as TFLite lays them out). */
final class ConvKernels {
    private ConvKernels() {}

    /** Spatial geometry shared by convolutions and pooling. */
    static final class Window {
        final int n, h, w, kh, kw, sh, sw, dh, dw, oh, ow, padTop, padLeft;

        Window(Kernel k, int[] in, int kh, int kw, int sh, int sw, int dh, int dw, int padding) {
            if (padding != 0 && padding != 1) {
                throw k.error("padding " + padding + " is neither SAME (0) nor VALID (1)");
            }
            this.n = in[0];
            this.h = in[1];
            this.w = in[2];
            this.kh = kh;
            this.kw = kw;
            this.sh = sh;
            this.sw = sw;
            this.dh = dh;
            this.dw = dw;
            int[] y = Shapes.outputAndPadding(h, kh, sh, dh, padding == 0, k.op.toString());
            int[] x = Shapes.outputAndPadding(w, kw, sw, dw, padding == 0, k.op.toString());
            this.oh = y[0];
            this.padTop = y[1];
            this.ow = x[0];
            this.padLeft = x[1];
        }

        /** First input row of output row {@code oy}'s window, clipped to the input. */
        int rowStart(int oy) {
            return Math.max(oy * sh - padTop, 0);
        }

        int rowEnd(int oy) {
            return Math.min(oy * sh - padTop + kh, h);
        }

        int colStart(int ox) {
            return Math.max(ox * sw - padLeft, 0);
        }

        int colEnd(int ox) {
            return Math.min(ox * sw - padLeft + kw, w);
        }
    }

    /**
     * Checks the inputs shared by CONV_2D and DEPTHWISE_CONV_2D: float input and filter of
     * rank 4, an optional bias of {@code outputs} values, and the options table.
     */
    static FlatBuffer.Table convInputs(Kernel k, int optionsType, String optionsName,
            int outputs) {
        k.expectCounts(2, 3, 1);
        k.rank(k.type(k.in(0), Model.FLOAT32), 4);
        k.rank(k.type(k.in(1), Model.FLOAT32), 4);
        Model.Tensor b = k.optionalIn(2);
        if (b != null && k.type(b, Model.FLOAT32).size() != outputs) {
            throw k.error("bias " + b + " must have " + outputs + " values");
        }
        FlatBuffer.Table opt = k.options(optionsType);
        if (opt == null) {
            throw k.error("has no " + optionsName);
        }
        return opt;
    }

    /** CONV_2D: input [N,H,W,C], filter [O,KH,KW,C/groups], optional bias [O]. */
    static final class Conv2D extends Kernel {
        private final Window g;
        private final int c, o, cg, groups, act;
        private final int input, filter, bias, output;
        private final float[] patch, acc;
        private float[] filterT;
        private boolean filterIsConstant;

        Conv2D(Model m, Model.Operator op) {
            super(m, op);
            Model.Tensor x = in(0);
            Model.Tensor f = in(1);
            Model.Tensor b = optionalIn(2);
            FlatBuffer.Table opt = convInputs(this, 1, "Conv2DOptions", f.shape[0]);
            c = x.shape[3];
            o = f.shape[0];
            cg = f.shape[3];
            if (cg < 1 || c % cg != 0 || o % (c / cg) != 0) {
                throw error("filter " + Shapes.str(f.shape) + " does not fit input "
                        + Shapes.str(x.shape));
            }
            groups = c / cg;
            act = activation(opt.i8(3, 0));
            g = new Window(this, x.shape, f.shape[1], f.shape[2], opt.i32(2, 0), opt.i32(1, 0),
                    opt.i32(5, 1), opt.i32(4, 1), opt.i8(0, 0));
            expectOutputShape(type(out(0), Model.FLOAT32), new int[] {g.n, g.oh, g.ow, o});
            input = op.inputs[0];
            filter = op.inputs[1];
            bias = b == null ? -1 : op.inputs[2];
            output = op.outputs[0];
            patch = new float[g.kh * g.kw * cg];
            acc = new float[o / groups];
        }

        @Override
        void constants(Object[] values, boolean[] constant) {
            filterIsConstant = constant[filter];
        }

        @Override
        void run(Object[] values) {
            float[] x = (float[]) values[input];
            float[] b = bias < 0 ? null : (float[]) values[bias];
            float[] y = (float[]) values[output];
            int perGroup = o / groups;
            int len = patch.length;
            if (filterT == null || !filterIsConstant) {
                filterT = transpose((float[]) values[filter], groups, perGroup, len);
            }
            float[] ft = filterT;
            float[] acc = this.acc;
            int yi = 0;
            for (int n = 0; n < g.n; n++) {
                for (int oy = 0; oy < g.oh; oy++) {
                    for (int ox = 0; ox < g.ow; ox++) {
                        for (int grp = 0; grp < groups; grp++) {
                            int p = 0;
                            for (int ky = 0; ky < g.kh; ky++) {
                                int iy = oy * g.sh - g.padTop + ky * g.dh;
                                for (int kx = 0; kx < g.kw; kx++) {
                                    int ix = ox * g.sw - g.padLeft + kx * g.dw;
                                    if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
                                        for (int ci = 0; ci < cg; ci++) {
                                            patch[p++] = 0f;
                                        }
                                    } else {
                                        int src = ((n * g.h + iy) * g.w + ix) * c + grp * cg;
                                        for (int ci = 0; ci < cg; ci++) {
                                            patch[p++] = x[src + ci];
                                        }
                                    }
                                }
                            }
                            // Each output sums its products in patch order, as a plain dot
                            // product would; looping over outputs innermost vectorizes.
                            java.util.Arrays.fill(acc, 0f);
                            int base = grp * len * perGroup;
                            for (int i = 0; i < len; i++) {
                                float v = patch[i];
                                int fo = base + i * perGroup;
                                for (int oc = 0; oc < perGroup; oc++) {
                                    acc[oc] += v * ft[fo + oc];
                                }
                            }
                            int oc0 = grp * perGroup;
                            for (int oc = 0; oc < perGroup; oc++) {
                                y[yi + oc0 + oc] = b == null ? acc[oc] : acc[oc] + b[oc0 + oc];
                            }
                        }
                        yi += o;
                    }
                }
            }
            applyActivation(y, act);
        }

        /** [O][len] → per group [len][O/groups]. */
        private static float[] transpose(float[] f, int groups, int perGroup, int len) {
            float[] t = new float[f.length];
            for (int grp = 0; grp < groups; grp++) {
                for (int oc = 0; oc < perGroup; oc++) {
                    int src = (grp * perGroup + oc) * len;
                    for (int i = 0; i < len; i++) {
                        t[grp * len * perGroup + i * perGroup + oc] = f[src + i];
                    }
                }
            }
            return t;
        }
    }

    /** DEPTHWISE_CONV_2D: filter [1,KH,KW,C*M], output channel c*M+m reads input channel c. */
    static final class DepthwiseConv2D extends Kernel {
        private final Window g;
        private final int c, o, mult, act;
        private final int input, filter, bias, output;

        DepthwiseConv2D(Model m, Model.Operator op) {
            super(m, op);
            Model.Tensor x = in(0);
            Model.Tensor f = in(1);
            Model.Tensor b = optionalIn(2);
            FlatBuffer.Table opt = convInputs(this, 2, "DepthwiseConv2DOptions", f.shape[3]);
            c = x.shape[3];
            o = f.shape[3];
            if (f.shape[0] != 1 || c < 1 || o % c != 0) {
                throw error("filter " + Shapes.str(f.shape) + " does not fit input "
                        + Shapes.str(x.shape));
            }
            mult = o / c;
            act = activation(opt.i8(4, 0));
            g = new Window(this, x.shape, f.shape[1], f.shape[2], opt.i32(2, 0), opt.i32(1, 0),
                    opt.i32(6, 1), opt.i32(5, 1), opt.i8(0, 0));
            expectOutputShape(type(out(0), Model.FLOAT32), new int[] {g.n, g.oh, g.ow, o});
            input = op.inputs[0];
            filter = op.inputs[1];
            bias = b == null ? -1 : op.inputs[2];
            output = op.outputs[0];
        }

        @Override
        void run(Object[] values) {
            float[] x = (float[]) values[input];
            float[] f = (float[]) values[filter];
            float[] b = bias < 0 ? null : (float[]) values[bias];
            float[] y = (float[]) values[output];
            int yi = 0;
            for (int n = 0; n < g.n; n++) {
                for (int oy = 0; oy < g.oh; oy++) {
                    for (int ox = 0; ox < g.ow; ox++) {
                        for (int oc = 0; oc < o; oc++) {
                            int ic = oc / mult;
                            float acc = 0f;
                            for (int ky = 0; ky < g.kh; ky++) {
                                int iy = oy * g.sh - g.padTop + ky * g.dh;
                                if (iy < 0 || iy >= g.h) {
                                    continue;
                                }
                                for (int kx = 0; kx < g.kw; kx++) {
                                    int ix = ox * g.sw - g.padLeft + kx * g.dw;
                                    if (ix < 0 || ix >= g.w) {
                                        continue;
                                    }
                                    acc += x[((n * g.h + iy) * g.w + ix) * c + ic]
                                            * f[(ky * g.kw + kx) * o + oc];
                                }
                            }
                            y[yi++] = b == null ? acc : acc + b[oc];
                        }
                    }
                }
            }
            applyActivation(y, act);
        }
    }

    /** FULLY_CONNECTED: input flattened to [B, K], weights [U, K], optional bias [U]. */
    static final class FullyConnected extends Kernel {
        private final int batch, k, units, act;
        private final int input, weights, bias, output;
        private float[] weightsT;
        private boolean weightsAreConstant;

        FullyConnected(Model m, Model.Operator op) {
            super(m, op);
            expectCounts(2, 3, 1);
            Model.Tensor x = type(in(0), Model.FLOAT32);
            Model.Tensor wt = rank(type(in(1), Model.FLOAT32), 2);
            Model.Tensor b = optionalIn(2);
            FlatBuffer.Table opt = options(8);
            act = activation(opt == null ? 0 : opt.i8(0, 0));
            if (opt != null && opt.i8(1, 0) != 0) {
                throw error("weights format " + opt.i8(1, 0) + " (shuffled) is not supported");
            }
            boolean keepDims = opt != null && opt.bool(2, false);
            units = wt.shape[0];
            k = wt.shape[1];
            if (k < 1 || x.size() % k != 0) {
                throw error("input " + x + " cannot be flattened to rows of " + k);
            }
            batch = x.size() / k;
            if (b != null && type(b, Model.FLOAT32).size() != units) {
                throw error("bias " + b + " must have " + units + " values");
            }
            int[] shape;
            if (keepDims) {
                shape = x.shape.clone();
                shape[shape.length - 1] = units;
            } else {
                shape = new int[] {batch, units};
            }
            expectOutputShape(type(out(0), Model.FLOAT32), shape);
            input = op.inputs[0];
            weights = op.inputs[1];
            bias = b == null ? -1 : op.inputs[2];
            output = op.outputs[0];
        }

        @Override
        void constants(Object[] values, boolean[] constant) {
            weightsAreConstant = constant[weights];
        }

        @Override
        void run(Object[] values) {
            float[] x = (float[]) values[input];
            float[] b = bias < 0 ? null : (float[]) values[bias];
            float[] y = (float[]) values[output];
            if (weightsT == null || !weightsAreConstant) {
                float[] w = (float[]) values[weights];
                weightsT = new float[w.length];
                for (int u = 0; u < units; u++) {
                    for (int i = 0; i < k; i++) {
                        weightsT[i * units + u] = w[u * k + i];
                    }
                }
            }
            float[] wt = weightsT;
            for (int r = 0; r < batch; r++) {
                int xo = r * k;
                int yo = r * units;
                java.util.Arrays.fill(y, yo, yo + units, 0f);
                for (int i = 0; i < k; i++) {
                    float v = x[xo + i];
                    int wo = i * units;
                    for (int u = 0; u < units; u++) {
                        y[yo + u] += v * wt[wo + u];
                    }
                }
                if (b != null) {
                    for (int u = 0; u < units; u++) {
                        y[yo + u] += b[u];
                    }
                }
            }
            applyActivation(y, act);
        }
    }

    /** MAX_POOL_2D and AVERAGE_POOL_2D (the average counts only positions inside the input). */
    static final class Pool2D extends Kernel {
        private final Window g;
        private final int c, act;
        private final boolean max;
        private final int input, output;

        Pool2D(Model m, Model.Operator op, boolean max) {
            super(m, op);
            this.max = max;
            expectCounts(1, 1, 1);
            Model.Tensor x = rank(type(in(0), Model.FLOAT32), 4);
            FlatBuffer.Table opt = options(5);
            if (opt == null) {
                throw error("has no Pool2DOptions");
            }
            act = activation(opt.i8(5, 0));
            c = x.shape[3];
            g = new Window(this, x.shape, opt.i32(4, 0), opt.i32(3, 0), opt.i32(2, 0),
                    opt.i32(1, 0), 1, 1, opt.i8(0, 0));
            expectOutputShape(type(out(0), Model.FLOAT32), new int[] {g.n, g.oh, g.ow, c});
            input = op.inputs[0];
            output = op.outputs[0];
        }

        @Override
        void run(Object[] values) {
            float[] x = (float[]) values[input];
            float[] y = (float[]) values[output];
            int yi = 0;
            for (int n = 0; n < g.n; n++) {
                for (int oy = 0; oy < g.oh; oy++) {
                    int y0 = g.rowStart(oy);
                    int y1 = g.rowEnd(oy);
                    for (int ox = 0; ox < g.ow; ox++) {
                        int x0 = g.colStart(ox);
                        int x1 = g.colEnd(ox);
                        // Channels innermost: contiguous reads, one pass per window pixel.
                        // The average sums in window order, as TFLite does.
                        java.util.Arrays.fill(y, yi, yi + c,
                                max ? Float.NEGATIVE_INFINITY : 0f);
                        for (int iy = y0; iy < y1; iy++) {
                            for (int ix = x0; ix < x1; ix++) {
                                int base = ((n * g.h + iy) * g.w + ix) * c;
                                if (max) {
                                    for (int ch = 0; ch < c; ch++) {
                                        float v = x[base + ch];
                                        if (v > y[yi + ch]) {
                                            y[yi + ch] = v;
                                        }
                                    }
                                } else {
                                    for (int ch = 0; ch < c; ch++) {
                                        y[yi + ch] += x[base + ch];
                                    }
                                }
                            }
                        }
                        if (!max) {
                            float count = (y1 - y0) * (x1 - x0);
                            for (int ch = 0; ch < c; ch++) {
                                y[yi + ch] /= count;
                            }
                        }
                        yi += c;
                    }
                }
            }
            applyActivation(y, act);
        }
    }
}
