package xnor.tflite;

/**
 * Image classification with a bundled model: preprocessing from its {@link ModelSpec},
 * inference with the {@link Interpreter}, and the top-k classes with probabilities (a
 * softmax of the outputs unless they already are probabilities). The Android app and the
 * host command line share this class, so the host tests exercise the app's exact path.
 */
public final class Classifier {
    /** The outcome of one classification. */
    public static final class Result {
        public final int[] classes;
        public final float[] probabilities;
        public final float[] outputs;
        public final double preprocessMillis, inferenceMillis;

        Result(int[] classes, float[] probabilities, float[] outputs, double preprocessMillis,
                double inferenceMillis) {
            this.classes = classes;
            this.probabilities = probabilities;
            this.outputs = outputs;
            this.preprocessMillis = preprocessMillis;
            this.inferenceMillis = inferenceMillis;
        }
    }

    public final Interpreter interpreter;
    public final ModelSpec spec;
    private final Preprocessor preprocessor;
    private final float[] input;

    public Classifier(Interpreter interpreter, ModelSpec spec) {
        int[] shape = interpreter.inputShape(0);
        if (shape.length != 4 || shape[0] != 1 || shape[1] != spec.height
                || shape[2] != spec.width || shape[3] != spec.channels) {
            throw new ModelException("the model's input " + Shapes.str(shape) + " does not match "
                    + "its preprocessing spec [1, " + spec.height + ", " + spec.width + ", "
                    + spec.channels + "]");
        }
        if (interpreter.model().outputs.length != 1) {
            throw new ModelException("a classifier needs exactly one output");
        }
        this.interpreter = interpreter;
        this.spec = spec;
        this.preprocessor = new Preprocessor(spec);
        this.input = new float[spec.height * spec.width * spec.channels];
    }

    public Result classify(ImageSource image, int k) {
        long t0 = System.nanoTime();
        preprocessor.apply(image, input);
        long t1 = System.nanoTime();
        float[] outputs = interpreter.run(input);
        long t2 = System.nanoTime();
        float[] p = probabilities(outputs);
        int n = Math.min(k, p.length);
        int[] top = new int[n];
        float[] topP = new float[n];
        boolean[] taken = new boolean[p.length];
        for (int i = 0; i < n; i++) {
            int best = -1;
            for (int j = 0; j < p.length; j++) {
                if (!taken[j] && (best < 0 || p[j] > p[best])) {
                    best = j;
                }
            }
            taken[best] = true;
            top[i] = best;
            topP[i] = p[best];
        }
        return new Result(top, topP, outputs, (t1 - t0) / 1e6, (t2 - t1) / 1e6);
    }

    /** The outputs if they already form a distribution, else their softmax. */
    static float[] probabilities(float[] y) {
        double sum = 0;
        boolean unit = true;
        for (float v : y) {
            unit &= v >= 0f && v <= 1f;
            sum += v;
        }
        if (unit && Math.abs(sum - 1.0) < 1e-3) {
            return y.clone();
        }
        float max = Float.NEGATIVE_INFINITY;
        for (float v : y) {
            max = Math.max(max, v);
        }
        float[] p = new float[y.length];
        double total = 0;
        for (int i = 0; i < y.length; i++) {
            p[i] = (float) Math.exp(y[i] - max);
            total += p[i];
        }
        for (int i = 0; i < y.length; i++) {
            p[i] = (float) (p[i] / total);
        }
        return p;
    }
}
