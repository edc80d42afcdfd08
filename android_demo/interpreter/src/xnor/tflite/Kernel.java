package xnor.tflite;

import java.util.Arrays;
import java.util.Map;

/**
 * One prepared operator. Subclasses check types, shapes and options in their constructor
 * (raising {@link ModelException} with the operator's name on any mismatch) and compute in
 * {@link #run(Object[])}, where {@code values[t]} is tensor t's data (float[] or int[]).
 */
abstract class Kernel {
    /** Fused activation functions (schema enum ActivationFunctionType). */
    static final int ACT_NONE = 0, ACT_RELU = 1, ACT_RELU_N1_TO_1 = 2, ACT_RELU6 = 3;

    final Model model;
    final Model.Operator op;

    Kernel(Model model, Model.Operator op) {
        this.model = model;
        this.op = op;
    }

    abstract void run(Object[] values);

    /**
     * Called once before the first run: {@code constant[t]} tells which tensors never change
     * (file constants and outputs of operators folded at load time), so kernels may cache
     * rearranged copies of them.
     */
    void constants(Object[] values, boolean[] constant) {}

    ModelException error(String message) {
        return new ModelException(op + ": " + message);
    }

    /** Input {@code i}, which must be present. */
    Model.Tensor in(int i) {
        if (i >= op.inputs.length || op.inputs[i] < 0) {
            throw error("needs input " + i + " but has " + op.inputs.length + " inputs");
        }
        return model.tensors.get(op.inputs[i]);
    }

    /** Optional input {@code i}, or null. */
    Model.Tensor optionalIn(int i) {
        return i < op.inputs.length && op.inputs[i] >= 0 ? model.tensors.get(op.inputs[i]) : null;
    }

    Model.Tensor out(int i) {
        if (i >= op.outputs.length) {
            throw error("needs output " + i + " but has " + op.outputs.length + " outputs");
        }
        return model.tensors.get(op.outputs[i]);
    }

    void expectCounts(int minInputs, int maxInputs, int outputs) {
        if (op.inputs.length < minInputs || op.inputs.length > maxInputs) {
            throw error("has " + op.inputs.length + " inputs, expected "
                    + (minInputs == maxInputs ? "" + minInputs : minInputs + " to " + maxInputs));
        }
        if (op.outputs.length != outputs) {
            throw error("has " + op.outputs.length + " outputs, expected " + outputs);
        }
    }

    Model.Tensor type(Model.Tensor t, int type) {
        if (t.type != type) {
            throw error(t + " has type " + Model.typeName(t.type) + "; this operator supports "
                    + Model.typeName(type) + " here");
        }
        return t;
    }

    Model.Tensor rank(Model.Tensor t, int rank) {
        if (t.shape.length != rank) {
            throw error(t + " must have rank " + rank);
        }
        return t;
    }

    /** The integer data of a constant INT32/INT64 tensor (shapes, axes, paddings). */
    int[] constantInts(Model.Tensor t) {
        if (!(t.constant instanceof int[]) || (t.type != Model.INT32 && t.type != Model.INT64)) {
            throw error(t + " must be a constant INT32 tensor");
        }
        return (int[]) t.constant;
    }

    void expectOutputShape(Model.Tensor t, int[] computed) {
        if (!Arrays.equals(t.shape, computed)) {
            throw error("the file declares output " + t + " but the inputs give shape "
                    + Shapes.str(computed));
        }
    }

    /** The builtin options table, checking its union type. */
    FlatBuffer.Table options(int expectedType) {
        if (op.builtinOptions == null) {
            return null;
        }
        if (op.builtinOptionsType != expectedType) {
            throw error("has builtin options of type " + op.builtinOptionsType + ", expected "
                    + expectedType);
        }
        return op.builtinOptions;
    }

    /** Checks a fused activation function code and returns it. */
    int activation(int code) {
        if (code < ACT_NONE || code > ACT_RELU6) {
            throw error("fused activation function " + code
                    + " (TANH / SIGN_BIT / unknown) is not supported");
        }
        return code;
    }

    static void applyActivation(float[] a, int code) {
        if (code == ACT_NONE) {
            return;
        }
        float lo = code == ACT_RELU_N1_TO_1 ? -1f : 0f;
        float hi = code == ACT_RELU ? Float.POSITIVE_INFINITY : code == ACT_RELU6 ? 6f : 1f;
        for (int i = 0; i < a.length; i++) {
            a[i] = Math.min(Math.max(a[i], lo), hi);
        }
    }

    /** Integer custom option {@code key} (required). */
    int customInt(String key) {
        if (!(op.customOptions instanceof Map)) {
            throw error("has no custom options (expected a FlexBuffers map with '" + key + "')");
        }
        Object v = ((Map<?, ?>) op.customOptions).get(key);
        if (v == null) {
            throw error("custom options lack '" + key + "'");
        }
        long x;
        if (v instanceof Long) {
            x = (Long) v;
        } else if (v instanceof Boolean) {
            x = ((Boolean) v) ? 1 : 0;
        } else {
            throw error("custom option '" + key + "' is " + v + ", expected an integer");
        }
        if (x != (int) x) {
            throw error("custom option '" + key + "' = " + x + " is out of range");
        }
        return (int) x;
    }

    int customInt(String key, int dflt) {
        if (!(op.customOptions instanceof Map) || !((Map<?, ?>) op.customOptions).containsKey(key)) {
            return dflt;
        }
        return customInt(key);
    }
}
