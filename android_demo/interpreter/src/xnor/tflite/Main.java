package xnor.tflite;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.nio.charset.Charset;
import java.util.Arrays;

/**
 * Host-JVM command line for the interpreter (used by the tests and for benchmarks).
 *
 * <pre>
 * java -cp xnor-tflite.jar xnor.tflite.Main run MODEL INPUT.npy OUTPUT.npy [MODEL IN OUT ...]
 * java -cp xnor-tflite.jar xnor.tflite.Main bench MODEL INPUT.npy REPEATS
 * java -cp xnor-tflite.jar xnor.tflite.Main preprocess SPEC(.tflite|.json) IMAGE.npy OUT.npy
 * java -cp xnor-tflite.jar xnor.tflite.Main classify MODEL SPEC(.tflite|.json) IMAGES.npy OUT.npy
 * java -cp xnor-tflite.jar xnor.tflite.Main nv21 FRAME.npy WIDTH HEIGHT ROTATION OUT.npy
 * java -cp xnor-tflite.jar xnor.tflite.Main info MODEL
 * </pre>
 *
 * {@code run} takes INPUT of shape [N, ...] (N inputs of the model's shape without its batch
 * axis of 1) and writes OUTPUT [N, ...]; it prints one JSON line per model with the
 * inference time. Errors print one line and exit with status 2.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        try {
            System.exit(dispatch(args));
        } catch (ModelException e) {
            System.err.println("xnor-tflite: error: " + e.getMessage());
            System.exit(2);
        } catch (IOException e) {
            System.err.println("xnor-tflite: error: " + e);
            System.exit(2);
        } catch (NumberFormatException e) {
            System.err.println("xnor-tflite: error: bad number: " + e.getMessage());
            System.exit(2);
        }
    }

    private static int usage() {
        System.err.println("usage: Main run MODEL IN.npy OUT.npy [MODEL IN OUT ...]"
                + " | bench MODEL IN.npy REPEATS | preprocess SPEC IMAGE.npy OUT.npy"
                + " | classify MODEL SPEC IMAGES.npy OUT.npy | nv21 FRAME.npy W H ROT OUT.npy"
                + " | info MODEL");
        return 2;
    }

    private static byte[] readFile(String path) throws IOException {
        File f = new File(path);
        if (!f.isFile()) {
            throw new ModelException(path + ": no such file");
        }
        return Model.readAll(new FileInputStream(f));
    }

    private static Interpreter load(String path) throws IOException {
        byte[] file = readFile(path);
        try {
            return new Interpreter(file);
        } catch (ModelException e) {
            throw new ModelException(path + ": " + e.getMessage());
        }
    }

    static int dispatch(String[] args) throws IOException {
        if (args.length < 1) {
            return usage();
        }
        String cmd = args[0];
        if (cmd.equals("run") && args.length >= 4 && (args.length - 1) % 3 == 0) {
            for (int i = 1; i < args.length; i += 3) {
                runModel(args[i], args[i + 1], args[i + 2]);
            }
            return ranKernels();
        } else if (cmd.equals("bench") && args.length == 4) {
            bench(args[1], args[2], Integer.parseInt(args[3]));
            return ranKernels();
        } else if (cmd.equals("preprocess") && args.length == 4) {
            preprocess(args[1], args[2], args[3]);
            return 0;
        } else if (cmd.equals("classify") && args.length == 5) {
            classify(args[1], args[2], args[3], args[4]);
            return ranKernels();
        } else if (cmd.equals("nv21") && args.length == 6) {
            nv21(args[1], Integer.parseInt(args[2]), Integer.parseInt(args[3]),
                    Integer.parseInt(args[4]), args[5]);
            return 0;
        } else if (cmd.equals("info") && args.length == 2) {
            Interpreter interpreter = load(args[1]);
            System.out.print(interpreter.describe());
            System.out.println("metadata: " + interpreter.model().metadataNames());
            return 0;
        }
        return usage();
    }

    /** After a command that ran models: says on stderr which kernels ran (and why not native). */
    private static int ranKernels() {
        System.err.println("xnor-tflite: kernels: " + NativeKernels.describe());
        return 0;
    }

    /** The model's per-example input size and the number of examples in {@code x}. */
    private static int[] batchOf(Interpreter interpreter, Npy x, String path) {
        int[] shape = interpreter.inputShape(0);
        int per = Shapes.size(shape);
        int[] expected = shape.length > 0 && shape[0] == 1
                ? Arrays.copyOfRange(shape, 1, shape.length) : shape;
        int[] got = Arrays.copyOfRange(x.shape, Math.min(1, x.shape.length), x.shape.length);
        if (x.floats == null || x.shape.length < 1 || !Arrays.equals(got, expected)) {
            throw new ModelException(path + ": expected float32 [N, " + Shapes.str(expected)
                    .replaceAll("[\\[\\]]", "") + "] inputs, got shape " + Shapes.str(x.shape));
        }
        return new int[] {per, x.shape[0]};
    }

    private static void runModel(String modelPath, String inPath, String outPath)
            throws IOException {
        Interpreter interpreter = load(modelPath);
        if (interpreter.model().inputs.length != 1 || interpreter.model().outputs.length != 1) {
            throw new ModelException(modelPath + ": the command line runs single-input, "
                    + "single-output models only");
        }
        Npy x = Npy.read(readFile(inPath), inPath);
        int[] pn = batchOf(interpreter, x, inPath);
        int per = pn[0];
        int n = pn[1];
        int[] outShape = interpreter.outputShape(0);
        int outPer = Shapes.size(outShape);
        float[] all = new float[n * outPer];
        float[] input = new float[per];
        long[] times = new long[n];
        for (int i = 0; i < n; i++) {
            System.arraycopy(x.floats, i * per, input, 0, per);
            long t0 = System.nanoTime();
            float[] y = interpreter.run(input);
            times[i] = System.nanoTime() - t0;
            System.arraycopy(y, 0, all, i * outPer, outPer);
        }
        int[] shape = new int[outShape.length + (outShape.length > 0 && outShape[0] == 1 ? 0 : 1)];
        shape[0] = n;
        System.arraycopy(outShape, outShape.length - (shape.length - 1), shape, 1,
                shape.length - 1);
        Npy.writeFloats(new File(outPath), shape, all);
        long[] sorted = times.clone();
        Arrays.sort(sorted);
        double median = n == 0 ? 0 : sorted[n / 2] / 1e6;
        System.out.println("{\"model\": \"" + modelPath.replace("\\", "\\\\").replace("\"", "\\\"")
                + "\", \"n\": " + n + ", \"median_ms\": " + median + "}");
    }

    private static void bench(String modelPath, String inPath, int repeats) throws IOException {
        Interpreter interpreter = load(modelPath);
        Npy x = Npy.read(readFile(inPath), inPath);
        int per = batchOf(interpreter, x, inPath)[0];
        float[] input = Arrays.copyOf(x.floats, per);
        for (int i = 0; i < Math.max(10, repeats / 5); i++) {
            interpreter.run(input); // warm-up: let the JIT compile the kernels
        }
        long[] times = new long[Math.max(repeats, 1)];
        for (int i = 0; i < times.length; i++) {
            long t0 = System.nanoTime();
            interpreter.run(input);
            times[i] = System.nanoTime() - t0;
        }
        Arrays.sort(times);
        System.out.println("{\"model\": \"" + modelPath + "\", \"repeats\": " + times.length
                + ", \"median_ms\": " + times[times.length / 2] / 1e6 + ", \"min_ms\": "
                + times[0] / 1e6 + "}");
    }

    private static ModelSpec spec(String path) throws IOException {
        byte[] raw = readFile(path);
        if (path.endsWith(".json")) {
            return ModelSpec.fromJson(new String(raw, Charset.forName("UTF-8")), path);
        }
        ModelSpec spec = ModelSpec.fromModel(Model.parse(raw));
        if (spec == null) {
            throw new ModelException(path + " has no '" + ModelSpec.METADATA_NAME
                    + "' metadata with a preprocessing spec");
        }
        return spec;
    }

    private static void preprocess(String specPath, String imagePath, String outPath)
            throws IOException {
        ModelSpec spec = spec(specPath);
        Npy image = Npy.read(readFile(imagePath), imagePath);
        if (image.bytes == null || image.shape.length < 2 || image.shape.length > 3) {
            throw new ModelException(imagePath + ": expected a uint8 [H, W] or [H, W, C] image");
        }
        int c = image.shape.length == 3 ? image.shape[2] : 1;
        ImageSource source = Images.interleaved(image.bytes, image.shape[1], image.shape[0], c);
        float[] out = new Preprocessor(spec).apply(source);
        Npy.writeFloats(new File(outPath), new int[] {spec.height, spec.width, spec.channels}, out);
    }

    /**
     * Classifies raw uint8 images [N, H, W] or [N, H, W, C] as the app does (preprocessing +
     * inference) and writes the model outputs [N, classes].
     */
    private static void classify(String modelPath, String specPath, String imagesPath,
            String outPath) throws IOException {
        Classifier classifier = new Classifier(load(modelPath), spec(specPath));
        Npy images = Npy.read(readFile(imagesPath), imagesPath);
        if (images.bytes == null || images.shape.length < 3 || images.shape.length > 4) {
            throw new ModelException(imagesPath + ": expected uint8 [N, H, W] or [N, H, W, C]");
        }
        int n = images.shape[0];
        int h = images.shape[1];
        int w = images.shape[2];
        int c = images.shape.length == 4 ? images.shape[3] : 1;
        int classes = Shapes.size(classifier.interpreter.outputShape(0));
        float[] all = new float[n * classes];
        double total = 0;
        for (int i = 0; i < n; i++) {
            byte[] one = Arrays.copyOfRange(images.bytes, i * h * w * c, (i + 1) * h * w * c);
            Classifier.Result r = classifier.classify(Images.interleaved(one, w, h, c), 3);
            System.arraycopy(r.outputs, 0, all, i * classes, classes);
            total += r.preprocessMillis + r.inferenceMillis;
        }
        Npy.writeFloats(new File(outPath), new int[] {n, classes}, all);
        System.out.println("{\"model\": \"" + modelPath + "\", \"n\": " + n
                + ", \"mean_ms\": " + (n == 0 ? 0 : total / n) + "}");
    }

    /** Converts an NV21 frame to rotated RGB (for testing the camera path). */
    private static void nv21(String framePath, int width, int height, int rotation,
            String outPath) throws IOException {
        Npy frame = Npy.read(readFile(framePath), framePath);
        if (frame.bytes == null) {
            throw new ModelException(framePath + ": expected uint8 NV21 bytes");
        }
        ImageSource image = Images.rotated(Images.nv21(frame.bytes, width, height), rotation);
        float[] rgb = new float[image.width() * image.height() * 3];
        int i = 0;
        for (int y = 0; y < image.height(); y++) {
            for (int x = 0; x < image.width(); x++) {
                for (int c = 0; c < 3; c++) {
                    rgb[i++] = image.get(x, y, c);
                }
            }
        }
        Npy.writeFloats(new File(outPath), new int[] {image.height(), image.width(), 3}, rgb);
    }
}
