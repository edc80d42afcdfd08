package xnor.tflite;

import java.util.Arrays;

/** Shape helpers shared by the kernels. */
final class Shapes {
    private Shapes() {}

    static String str(int[] shape) {
        return Arrays.toString(shape);
    }

    static int size(int[] shape) {
        return Model.elementCount(shape);
    }

    /**
     * Output size and leading padding of one spatial axis of a convolution or pooling, as
     * TFLite computes them: SAME gives ceil(in / stride) outputs, VALID
     * floor((in - effective_filter) / stride) + 1, and the padding before is half the total
     * (rounded down).
     */
    static int[] outputAndPadding(int in, int filter, int stride, int dilation, boolean same,
            String where) {
        if (filter < 1 || stride < 1 || dilation < 1) {
            throw new ModelException(where + ": filter " + filter + ", stride " + stride
                    + " and dilation " + dilation + " must all be >= 1");
        }
        long effective = (long) (filter - 1) * dilation + 1;
        long out = same ? (in + (long) stride - 1) / stride : (in - effective + stride) / stride;
        if (out < 1) {
            throw new ModelException(where + ": a " + effective + "-wide window does not fit "
                    + "an input of size " + in + " with VALID padding");
        }
        long total = Math.max((out - 1) * stride + effective - in, 0);
        return new int[] {(int) out, (int) (total / 2)};
    }

    /** NumPy-style broadcast of two shapes, or null if they are incompatible. */
    static int[] broadcast(int[] a, int[] b) {
        int rank = Math.max(a.length, b.length);
        int[] out = new int[rank];
        for (int i = 0; i < rank; i++) {
            int da = i - (rank - a.length) >= 0 ? a[i - (rank - a.length)] : 1;
            int db = i - (rank - b.length) >= 0 ? b[i - (rank - b.length)] : 1;
            if (da != db && da != 1 && db != 1) {
                return null;
            }
            out[i] = da == 1 ? db : da;
        }
        return out;
    }
}
