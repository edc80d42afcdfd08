package xnor.tflite;

import java.util.ArrayList;
import java.util.List;

/**
 * Runs a .tflite model with larq-compute-engine binary operators, in plain Java.
 *
 * <p>The constructor parses the file and prepares every operator: unknown operators,
 * unsupported tensor types, inconsistent shapes, reads of tensors that nothing has written,
 * and malformed data all raise {@link ModelException} naming the problem. {@link #run}
 * then executes the operators in file order on preallocated buffers. An instance is not
 * thread-safe; create one per thread.
 *
 * <pre>
 * Interpreter interpreter = new Interpreter(bytesOfModelFile);
 * float[] scores = interpreter.run(preprocessedImage);
 * </pre>
 *
 * <p>Inputs and outputs may also be INT32 (LCE's bitpacked binary tensors, as in a piece
 * cut out of a converted file between two binary layers): {@link #runTensors} takes and
 * returns {@code float[]} or {@code int[]} per tensor.
 *
 * <pre>
 * Object[] out = interpreter.runTensors(new Object[] {bitpackedWords, floats});
 * </pre>
 */
public final class Interpreter {
    private final Model model;
    private final List<Kernel> kernels;
    private final Object[] values;

    public Interpreter(byte[] modelFile) {
        this(Model.parse(modelFile));
    }

    public Interpreter(Model model) {
        this.model = model;
        int nTensors = model.tensors.size();
        boolean[] written = new boolean[nTensors];
        for (Model.Tensor t : model.tensors) {
            written[t.index] = t.isConstant();
        }
        if (model.inputs.length == 0 || model.outputs.length == 0) {
            throw new ModelException("the model declares " + model.inputs.length + " inputs and "
                    + model.outputs.length + " outputs; it needs at least one of each");
        }
        for (int i : model.inputs) {
            Model.Tensor t = model.tensors.get(i);
            if (t.type != Model.FLOAT32 && t.type != Model.INT32) {
                throw new ModelException("model input " + t
                        + " is not FLOAT32 or (bitpacked) INT32: not supported");
            }
            if (t.isConstant()) {
                throw new ModelException("model input " + t + " is a constant");
            }
            written[i] = true;
        }
        long bytes = 0;
        for (Model.Tensor t : model.tensors) {
            if (!t.isConstant()) {
                bytes += 4L * t.size();
            }
        }
        long budget = Math.min(1L << 30, Runtime.getRuntime().maxMemory() / 2);
        if (bytes > budget) {
            throw new ModelException("the model's activations need " + (bytes >> 20)
                    + " MiB, more than the " + (budget >> 20) + " MiB this interpreter allows");
        }
        values = new Object[nTensors];
        for (Model.Tensor t : model.tensors) {
            if (t.isConstant()) {
                values[t.index] = t.constant;
            } else if (t.type == Model.FLOAT32) {
                values[t.index] = new float[t.size()];
            } else if (t.type == Model.INT32) {
                values[t.index] = new int[t.size()];
            }
        }
        // Operators whose inputs are all constant (e.g. decoding 1-bit stored weights) run
        // once here; their outputs then count as constants.
        boolean[] constant = new boolean[nTensors];
        for (Model.Tensor t : model.tensors) {
            constant[t.index] = t.isConstant();
        }
        kernels = new ArrayList<Kernel>(model.operators.size());
        for (Model.Operator op : model.operators) {
            for (int t : op.inputs) {
                if (t >= 0 && !written[t]) {
                    throw new ModelException(op + " reads " + model.tensors.get(t)
                            + " before any operator writes it");
                }
            }
            for (int t : op.outputs) {
                if (written[t]) {
                    throw new ModelException(op + " writes " + model.tensors.get(t)
                            + ", which is a constant, a model input or already written");
                }
                written[t] = true;
            }
            Kernel kernel = create(model, op);
            kernel.constants(values, constant);
            boolean foldable = op.outputs.length > 0;
            for (int t : op.inputs) {
                foldable &= t < 0 || constant[t];
            }
            if (foldable) {
                kernel.run(values);
                for (int t : op.outputs) {
                    constant[t] = true;
                }
            } else {
                kernels.add(kernel);
            }
        }
        for (int o : model.outputs) {
            Model.Tensor t = model.tensors.get(o);
            if (!written[o]) {
                throw new ModelException("model output " + t + " is never written");
            }
            if (t.type != Model.FLOAT32 && t.type != Model.INT32) {
                throw new ModelException("model output " + t
                        + " is not FLOAT32 or (bitpacked) INT32: not supported");
            }
        }
    }

    private static Kernel create(Model m, Model.Operator op) {
        if (op.customCode != null) {
            if ("LceQuantize".equals(op.customCode)) {
                return new LceKernels.Quantize(m, op);
            } else if ("LceDequantize".equals(op.customCode)) {
                return new LceKernels.Dequantize(m, op);
            } else if ("LceBconv2d".equals(op.customCode)) {
                return new LceKernels.BConv2d(m, op);
            } else if ("LceBMaxPool2d".equals(op.customCode)) {
                return new LceKernels.BMaxPool2d(m, op);
            }
            throw new ModelException(op + ": unknown custom operator '" + op.customCode + "'");
        }
        switch (op.builtinCode) {
            case BuiltinOps.CONV_2D:
                return new ConvKernels.Conv2D(m, op);
            case BuiltinOps.DEPTHWISE_CONV_2D:
                return new ConvKernels.DepthwiseConv2D(m, op);
            case BuiltinOps.FULLY_CONNECTED:
                return new ConvKernels.FullyConnected(m, op);
            case BuiltinOps.MAX_POOL_2D:
                return new ConvKernels.Pool2D(m, op, true);
            case BuiltinOps.AVERAGE_POOL_2D:
                return new ConvKernels.Pool2D(m, op, false);
            case BuiltinOps.ADD:
            case BuiltinOps.SUB:
            case BuiltinOps.MUL:
            case BuiltinOps.DIV:
            case BuiltinOps.MAXIMUM:
            case BuiltinOps.MINIMUM:
                return new ElementKernels.Binary(m, op);
            case BuiltinOps.ABS:
            case BuiltinOps.SIGN:
            case BuiltinOps.RELU:
            case BuiltinOps.RELU6:
            case BuiltinOps.RELU_N1_TO_1:
            case BuiltinOps.LOGISTIC:
            case BuiltinOps.TANH:
            case BuiltinOps.HARD_SWISH:
            case BuiltinOps.LEAKY_RELU:
                return new ElementKernels.Unary(m, op);
            case BuiltinOps.MEAN:
            case BuiltinOps.SUM:
                return new ElementKernels.Reduce(m, op);
            case BuiltinOps.RESHAPE:
            case BuiltinOps.SQUEEZE:
                return new ElementKernels.Reshape(m, op);
            case BuiltinOps.PAD:
            case BuiltinOps.PADV2:
                return new ElementKernels.Pad(m, op);
            case BuiltinOps.CONCATENATION:
                return new ElementKernels.Concatenation(m, op);
            case BuiltinOps.SOFTMAX:
                return new ElementKernels.Softmax(m, op);
            default:
                throw new ModelException(op + ": unsupported builtin operator '"
                        + BuiltinOps.name(op.builtinCode) + "' (code " + op.builtinCode + ")");
        }
    }

    public Model model() {
        return model;
    }

    public int[] inputShape(int i) {
        return model.tensors.get(model.inputs[i]).shape.clone();
    }

    public int[] outputShape(int i) {
        return model.tensors.get(model.outputs[i]).shape.clone();
    }

    /** Runs a model with one input and one output; returns a new output array. */
    public float[] run(float[] input) {
        if (model.inputs.length != 1 || model.outputs.length != 1) {
            throw new ModelException("run(float[]) needs a model with one input and one output; "
                    + "this one has " + model.inputs.length + " and " + model.outputs.length);
        }
        float[][] outputs = new float[1][];
        run(new float[][] {input}, outputs);
        return outputs[0];
    }

    /** Runs the model; {@code outputs[i]} receives a new array for output i. */
    public void run(float[][] inputs, float[][] outputs) {
        if (inputs.length != model.inputs.length || outputs.length != model.outputs.length) {
            throw new ModelException("the model has " + model.inputs.length + " inputs and "
                    + model.outputs.length + " outputs; got " + inputs.length + " and "
                    + outputs.length);
        }
        for (int i : model.inputs) {
            requireFloat("input", model.tensors.get(i));
        }
        for (int o : model.outputs) {
            requireFloat("output", model.tensors.get(o));
        }
        for (int i = 0; i < inputs.length; i++) {
            float[] dst = (float[]) values[model.inputs[i]];
            if (inputs[i] == null || inputs[i].length != dst.length) {
                throw new ModelException("input " + i + " needs " + dst.length + " values "
                        + Shapes.str(inputShape(i)) + "; got "
                        + (inputs[i] == null ? "null" : "" + inputs[i].length));
            }
            System.arraycopy(inputs[i], 0, dst, 0, dst.length);
        }
        for (Kernel k : kernels) {
            k.run(values);
        }
        for (int i = 0; i < outputs.length; i++) {
            outputs[i] = ((float[]) values[model.outputs[i]]).clone();
        }
    }

    private static void requireFloat(String what, Model.Tensor t) {
        if (t.type != Model.FLOAT32) {
            throw new ModelException("model " + what + " " + t + " is not FLOAT32: "
                    + "run(float[][], float[][]) needs float tensors; use runTensors");
        }
    }

    /** The TFLite type code ({@link Model#FLOAT32} or {@link Model#INT32}) of input i. */
    public int inputType(int i) {
        return model.tensors.get(model.inputs[i]).type;
    }

    /** The TFLite type code ({@link Model#FLOAT32} or {@link Model#INT32}) of output i. */
    public int outputType(int i) {
        return model.tensors.get(model.outputs[i]).type;
    }

    /**
     * Runs the model on inputs of either type: {@code inputs[i]} is a {@code float[]} for a
     * FLOAT32 input and an {@code int[]} (bitpacked words) for an INT32 one, with the
     * tensor's element count. Returns new arrays, one per output, of the outputs' types.
     * A kernel that fails at run time raises ModelException naming its operator.
     */
    public Object[] runTensors(Object[] inputs) {
        if (inputs.length != model.inputs.length) {
            throw new ModelException("the model has " + model.inputs.length + " inputs; got "
                    + inputs.length);
        }
        for (int i = 0; i < inputs.length; i++) {
            Model.Tensor t = model.tensors.get(model.inputs[i]);
            Object dst = values[t.index];
            int got = inputs[i] instanceof float[] ? ((float[]) inputs[i]).length
                    : inputs[i] instanceof int[] ? ((int[]) inputs[i]).length : -1;
            boolean typeOk = t.type == Model.FLOAT32 ? inputs[i] instanceof float[]
                    : inputs[i] instanceof int[];
            if (!typeOk || got != t.size()) {
                throw new ModelException("input " + i + " is " + t + " (" + t.size()
                        + " values); got " + (inputs[i] == null ? "null"
                        : got < 0 ? inputs[i].getClass().getSimpleName()
                        : (inputs[i] instanceof int[] ? "INT32 " : "FLOAT32 ") + got + " values"));
            }
            System.arraycopy(inputs[i], 0, dst, 0, got);
        }
        for (Kernel k : kernels) {
            try {
                k.run(values);
            } catch (ModelException e) {
                throw e;
            } catch (RuntimeException e) {
                throw new ModelException(k.op + " failed: " + e);
            }
        }
        Object[] outputs = new Object[model.outputs.length];
        for (int i = 0; i < outputs.length; i++) {
            Object v = values[model.outputs[i]];
            outputs[i] = v instanceof int[] ? ((int[]) v).clone() : ((float[]) v).clone();
        }
        return outputs;
    }

    /** A one-line-per-operator description of the model (for logs and the CLI). */
    public String describe() {
        StringBuilder b = new StringBuilder();
        for (Model.Operator op : model.operators) {
            b.append(op).append(": ");
            for (int i = 0; i < op.outputs.length; i++) {
                b.append(i == 0 ? "" : ", ").append(model.tensors.get(op.outputs[i]));
            }
            b.append('\n');
        }
        return b.toString();
    }
}
