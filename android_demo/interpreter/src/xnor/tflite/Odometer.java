package xnor.tflite;

/**
 * Walks the indices of a shape in row-major order while keeping, for each of several
 * arrays, the flat offset given by that array's strides (0 on broadcast axes).
 */
final class Odometer {
    private final int[] shape;
    private final int[][] strides;
    private final int[] index;
    /** offset[k]: the current flat position in array k. */
    final int[] offset;

    Odometer(int[] shape, int[]... strides) {
        this.shape = shape;
        this.strides = strides;
        this.index = new int[shape.length];
        this.offset = new int[strides.length];
    }

    /** Starts again at index 0 with the given offsets. */
    void reset(int... start) {
        java.util.Arrays.fill(index, 0);
        System.arraycopy(start, 0, offset, 0, offset.length);
    }

    /** Moves to the next index (the last axis fastest). */
    void next() {
        for (int d = shape.length - 1; d >= 0; d--) {
            index[d]++;
            for (int k = 0; k < offset.length; k++) {
                offset[k] += strides[k][d];
            }
            if (index[d] < shape[d]) {
                return;
            }
            for (int k = 0; k < offset.length; k++) {
                offset[k] -= strides[k][d] * shape[d];
            }
            index[d] = 0;
        }
    }
}
