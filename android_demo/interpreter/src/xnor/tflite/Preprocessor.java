package xnor.tflite;

/**
 * Turns raw pixels into a model input exactly as {@code xnor_keras.data.preprocess_eval}
 * does for a version-1 preprocessing spec, computing only the pixels of the final crop:
 *
 * <ol>
 *   <li>colour: RGB → Σ grayscale_weights[c]·pixel[c] for a grayscale model, gray → RGB by
 *       repetition for an RGB model (float32, 0–255 scale);
 *   <li>resize: shorter side → resize_shorter_side, longer side floor(long·S/short + ½),
 *       bilinear with half-pixel centres (TensorFlow's {@code tf.image.resize});
 *   <li>center crop to height × width;
 *   <li>normalise: (pixel / scale − mean[c]) / std[c].
 * </ol>
 */
public final class Preprocessor {
    private final ModelSpec spec;

    public Preprocessor(ModelSpec spec) {
        this.spec = spec;
    }

    /** The model input [height, width, channels] (NHWC without the batch axis). */
    public float[] apply(ImageSource image) {
        float[] out = new float[spec.height * spec.width * spec.channels];
        apply(image, out);
        return out;
    }

    public void apply(ImageSource image, float[] out) {
        int h = image.height();
        int w = image.width();
        if (out.length != spec.height * spec.width * spec.channels) {
            throw new ModelException("output buffer has " + out.length + " values, expected "
                    + spec.height * spec.width * spec.channels);
        }
        long shorter = Math.min(h, w);
        long size = spec.resizeShorterSide;
        int newH = (int) ((2L * h * size + shorter) / (2 * shorter));
        int newW = (int) ((2L * w * size + shorter) / (2 * shorter));
        if (newH < spec.height || newW < spec.width) {
            throw new ModelException("a " + w + "x" + h + " image resized to " + newW + "x"
                    + newH + " is smaller than the " + spec.width + "x" + spec.height + " crop");
        }
        int top = (newH - spec.height) / 2;
        int left = (newW - spec.width) / 2;
        float scaleY = (float) h / newH;
        float scaleX = (float) w / newW;
        int[] x0 = new int[spec.width];
        int[] x1 = new int[spec.width];
        float[] lx = new float[spec.width];
        for (int x = 0; x < spec.width; x++) {
            float in = (left + x + 0.5f) * scaleX - 0.5f;
            float fl = (float) Math.floor(in);
            x0[x] = Math.max((int) fl, 0);
            x1[x] = Math.min((int) Math.ceil(in), w - 1);
            lx[x] = in - fl;
        }
        int c = spec.channels;
        int i = 0;
        for (int y = 0; y < spec.height; y++) {
            float in = (top + y + 0.5f) * scaleY - 0.5f;
            float fl = (float) Math.floor(in);
            int y0 = Math.max((int) fl, 0);
            int y1 = Math.min((int) Math.ceil(in), h - 1);
            float ly = in - fl;
            for (int x = 0; x < spec.width; x++) {
                for (int ch = 0; ch < c; ch++) {
                    float tl = color(image, x0[x], y0, ch);
                    float tr = color(image, x1[x], y0, ch);
                    float bl = color(image, x0[x], y1, ch);
                    float br = color(image, x1[x], y1, ch);
                    float t = tl + (tr - tl) * lx[x];
                    float b = bl + (br - bl) * lx[x];
                    float v = t + (b - t) * ly;
                    out[i++] = (v / spec.scale - spec.mean[ch]) / spec.std[ch];
                }
            }
        }
    }

    /** Step 1: the model's colour channel {@code ch} of one source pixel. */
    private float color(ImageSource image, int x, int y, int ch) {
        if (image.channels() == 1) {
            return image.get(x, y, 0);
        }
        if (spec.rgb) {
            return image.get(x, y, ch);
        }
        float[] wt = spec.grayscaleWeights;
        return image.get(x, y, 0) * wt[0] + image.get(x, y, 1) * wt[1]
                + image.get(x, y, 2) * wt[2];
    }
}
