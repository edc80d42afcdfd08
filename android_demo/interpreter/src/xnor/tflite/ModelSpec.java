package xnor.tflite;

import java.nio.charset.Charset;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * What a bundled model expects and means: its preprocessing (a version-1
 * {@code xnor_keras.data.preprocessing_spec}) and class labels.
 *
 * <p>Read from the JSON that {@code xnor-deploy convert} stores in the .tflite metadata entry
 * {@value #METADATA_NAME}, or from a {@code model_spec.json} with the same
 * {@code "preprocessing"} and {@code "labels"} keys.
 */
public final class ModelSpec {
    public static final String METADATA_NAME = "xnor_keras";

    public final int height, width, channels;
    public final boolean rgb;
    public final float[] grayscaleWeights;
    public final int resizeShorterSide;
    public final float scale;
    public final float[] mean, std;
    public final List<String> labels;
    /** A one-line description of where the model came from (may be empty). */
    public final String description;

    private ModelSpec(Map<?, ?> root, String what) {
        Object pre = root.get("preprocessing");
        if (!(pre instanceof Map)) {
            throw new ModelException(what + " has no \"preprocessing\" object");
        }
        Map<?, ?> p = (Map<?, ?>) pre;
        if (number(p, "version", what) != 1) {
            throw new ModelException(what + ": preprocessing version " + p.get("version")
                    + " is not supported (expected 1)");
        }
        require(p, "resize", "bilinear_half_pixel", what);
        require(p, "crop", "center", what);
        require(p, "layout", "NHWC", what);
        require(p, "dtype", "float32", what);
        float[] shape = numbers(p, "input_shape", what);
        if (shape.length != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1) {
            throw new ModelException(what + ": input_shape must be [height, width, channels]");
        }
        height = (int) shape[0];
        width = (int) shape[1];
        channels = (int) shape[2];
        Object color = p.get("color");
        rgb = "rgb".equals(color);
        if (!(rgb && channels == 3) && !("grayscale".equals(color) && channels == 1)) {
            throw new ModelException(what + ": color " + color + " does not match " + channels
                    + " input channels");
        }
        grayscaleWeights = numbers(p, "grayscale_weights", what);
        if (grayscaleWeights.length != 3) {
            throw new ModelException(what + ": grayscale_weights must have 3 values");
        }
        resizeShorterSide = (int) number(p, "resize_shorter_side", what);
        scale = (float) number(p, "scale", what);
        mean = numbers(p, "mean", what);
        std = numbers(p, "std", what);
        if (mean.length != channels || std.length != channels || resizeShorterSide < 1) {
            throw new ModelException(what + ": mean/std must have " + channels
                    + " values and resize_shorter_side must be >= 1");
        }
        List<String> names = new ArrayList<String>();
        Object l = root.get("labels");
        if (l instanceof List) {
            for (Object o : (List<?>) l) {
                names.add(String.valueOf(o));
            }
        }
        labels = Collections.unmodifiableList(names);
        Object d = root.get("description");
        description = d == null ? "" : String.valueOf(d);
    }

    /** Parses a spec JSON document ({@code what} names it in error messages). */
    public static ModelSpec fromJson(String json, String what) {
        Object root = Json.parse(json, what);
        if (!(root instanceof Map)) {
            throw new ModelException(what + " is not a JSON object");
        }
        return new ModelSpec((Map<?, ?>) root, what);
    }

    /** The spec stored in a model's metadata by xnor-deploy, or null if there is none. */
    public static ModelSpec fromModel(Model model) {
        byte[] raw = model.metadata(METADATA_NAME);
        if (raw == null) {
            return null;
        }
        return fromJson(new String(raw, Charset.forName("UTF-8")),
                "model metadata '" + METADATA_NAME + "'");
    }

    /** The label of class {@code i}, or "class i" when the spec has no labels. */
    public String label(int i) {
        return i < labels.size() ? labels.get(i) : "class " + i;
    }

    private static void require(Map<?, ?> p, String key, String value, String what) {
        if (!value.equals(p.get(key))) {
            throw new ModelException(what + ": preprocessing " + key + " must be '" + value
                    + "', got " + p.get(key));
        }
    }

    private static double number(Map<?, ?> p, String key, String what) {
        Object v = p.get(key);
        if (!(v instanceof Double)) {
            throw new ModelException(what + ": preprocessing " + key + " must be a number");
        }
        return (Double) v;
    }

    private static float[] numbers(Map<?, ?> p, String key, String what) {
        Object v = p.get(key);
        if (!(v instanceof List)) {
            throw new ModelException(what + ": preprocessing " + key + " must be a list");
        }
        List<?> list = (List<?>) v;
        float[] out = new float[list.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(list.get(i) instanceof Double)) {
                throw new ModelException(what + ": preprocessing " + key + " must hold numbers");
            }
            out[i] = ((Double) list.get(i)).floatValue();
        }
        return out;
    }
}
